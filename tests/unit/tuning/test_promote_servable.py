"""A promoted winner whose features differ from the served FeatureSpec is flagged."""

from __future__ import annotations

import io

from rich.console import Console

from augur.cli.tune import _warn_if_not_servable
from augur.features import FeatureSpec


def _said(lineage: dict[str, object]) -> str:
    buf = io.StringIO()
    _warn_if_not_servable(Console(file=buf, width=400), lineage)
    return buf.getvalue()


def test_winner_with_other_windows_is_flagged() -> None:
    other = FeatureSpec(windows=(5, 10, 20))
    text = _said({"feature_spec_hash": other.hash, "feature_windows": [5, 10, 20]})
    assert other.hash in text and "AUGUR_WINDOWS" in text


def test_winner_with_the_served_features_is_not_flagged() -> None:
    assert _said({"feature_spec_hash": FeatureSpec.from_settings().hash}) == ""
