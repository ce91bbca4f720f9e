"""Keeping numba's on-disk cache of the kernels true to the decision rules.

numba keys a cached kernel on its own source file only, but the kernels in
:mod:`augur.backtest._kernels` inline the rules of :mod:`augur.decision._step` and
:mod:`augur.decision._sizing`. After a change to those (a ``git pull``), the cache would
serve machine code of the old rules, and the simulation and the sweep would disagree with
``decide()``. :func:`drop_stale` removes the kernels' cached code when the rules' sources
differ from those it was compiled with (a digest kept beside the cache), so they compile
afresh.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def drop_stale(cache_dir: Path, prefix: str, sources: Iterable[Path]) -> bool:
    """Delete ``cache_dir/<prefix>.*.nbi|nbc`` unless ``sources`` are those recorded last
    time; record them. True when something was deleted. Never raises on a read-only or
    missing cache directory (numba then compiles in memory)."""
    digest = hashlib.sha256(b"".join(Path(s).read_bytes() for s in sources)).hexdigest()
    stamp = cache_dir / f"{prefix}.rules.sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    dropped = False
    try:
        for cached in [*cache_dir.glob(f"{prefix}.*.nbi"), *cache_dir.glob(f"{prefix}.*.nbc")]:
            cached.unlink(missing_ok=True)
            dropped = True
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, stamp)
    except OSError:
        pass
    return dropped


__all__ = ["drop_stale"]
