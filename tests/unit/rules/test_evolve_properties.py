"""The local proposer over random valid incumbents: every candidate it offers is a valid
rule set, differs from the incumbent and from the others, and the same seed gives the
same candidates."""

from __future__ import annotations

from hypothesis import given, settings

from augur.rules import LocalProposer, ProposalRequest, parse
from tests.unit.rules.test_properties import _rules


@settings(max_examples=50, deadline=None)
@given(_rules)
def test_the_local_proposer_offers_only_valid_distinct_rules(incumbent: str) -> None:
    request = ProposalRequest(1, 5, incumbent, {})
    proposals = LocalProposer(seed=3).propose(request).proposals
    texts = [" ".join(p.rules.split()) for p in proposals]
    assert proposals and len(set(texts)) == len(texts)
    assert " ".join(incumbent.split()) not in texts
    for p in proposals:
        parse(p.rules)
    assert LocalProposer(seed=3).propose(request).proposals == proposals
