"""The kernels' numba cache is dropped when the decision rules they inline change."""

from __future__ import annotations

from pathlib import Path

from augur.backtest._kernel_cache import drop_stale


def test_cached_kernels_go_when_the_rules_change(tmp_path: Path) -> None:
    cache = tmp_path / "__pycache__"
    rules = tmp_path / "_step.py"
    rules.write_text("THRESHOLD = 1\n")
    assert not drop_stale(cache, "_kernels", [rules])  # first sight: nothing cached yet
    kept = [cache / "_kernels.entry-1.py311.nbi", cache / "_kernels.entry-1.py311.1.nbc"]
    other = cache / "_other.f-1.py311.nbi"
    for f in (*kept, other):
        f.write_bytes(b"machine code")
    assert not drop_stale(cache, "_kernels", [rules])  # same rules: the cache stays
    assert all(f.exists() for f in kept)
    rules.write_text("THRESHOLD = 2\n")  # a pull changes the rules
    assert drop_stale(cache, "_kernels", [rules])
    assert not any(f.exists() for f in kept) and other.exists()
    assert not drop_stale(cache, "_kernels", [rules])


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    """numba then compiles in memory: the stamp is simply not kept."""
    rules = tmp_path / "_step.py"
    rules.write_text("x = 1\n")
    blocked = tmp_path / "__pycache__"
    blocked.write_text("a file where the directory would be")
    assert not drop_stale(blocked, "_kernels", [rules])
    assert blocked.read_text().startswith("a file")
