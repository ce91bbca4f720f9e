"""Reliability under load and faults (issue 27): scenarios against the real processes —
``augur serve`` with two workers, a real Redis, a real PostgreSQL for the prediction
log — loaded at a fixed rate from 127.0.0.1, each asserting what a user would notice.

``python -m tests.chaos`` (``make chaos``) runs them all at full length and prints one
table; ``tests/chaos/test_chaos_short.py`` runs a short soak and the Redis kill under
``make test``. docs/reliability.md says what each scenario asserts.
"""

from tests.chaos._measure import Result
from tests.chaos._scenarios import FULL, SCENARIOS, SHORT, Scale

__all__ = ["FULL", "SCENARIOS", "SHORT", "Result", "Scale"]
