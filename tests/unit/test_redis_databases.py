"""The test modules share one Redis server, each in a database of its own: two modules on
one database see each other's rows (Feast keeps the newer row of a symbol, so one test's
"now" bar hides another's history)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CONSTANT = re.compile(r"^REDIS_DB\s*=\s*(\d+)", re.MULTILINE)
INLINE = re.compile(r"redis_server\.url\}?,db=(\d+)")


def test_no_two_test_modules_share_a_redis_database() -> None:
    users: dict[int, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for db in {*CONSTANT.findall(text), *INLINE.findall(text)}:
            users[int(db)].append(str(path.relative_to(TESTS)))
    shared = {db: paths for db, paths in users.items() if len(paths) > 1}
    assert not shared, f"Redis databases used by more than one test module: {shared}"
    assert all(0 < db < 64 for db in users), "the session's Redis has databases 0..63"
