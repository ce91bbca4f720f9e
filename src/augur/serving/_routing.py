"""The routing table: which model versions serve, with what weight, and the shadow.

Contract (ARCHITECTURE.md): ``{versions: [{name, model_tag, weight}], shadow: {name,
model_tag, percent}}`` with weights summing to 100. The first version is the primary,
the others are canaries. The table lives in a file (the operator mounts it from a
ConfigMap); :class:`RoutingTableFile` re-reads it when it changes and keeps the last good
table when the new one is invalid.

Requests are split by a stable hash of a routing key (the symbol or a client key), so a
caller always meets the same version while the table is unchanged, and the proportions
over many keys match the weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)

# Hash buckets: 10,000 gives weights and shadow percents a resolution of 0.01%.
BUCKETS = 10_000


class VersionRoute(BaseModel):
    """One serving version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, description="Route name, e.g. 'stable'.")
    model_tag: str = Field(min_length=1, description="BentoML model tag, e.g. 'augur-ensemble:v3'.")
    weight: float = Field(ge=0, le=100, description="Share of traffic in percent.")


class ShadowRoute(BaseModel):
    """A version scoring a mirror of the traffic off the request path."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    model_tag: str = Field(min_length=1)
    percent: float = Field(default=100.0, ge=0, le=100, description="Share of requests mirrored.")


class RoutingTable(BaseModel):
    """The routing table contract; invalid combinations are refused with a clear message."""

    model_config = ConfigDict(extra="forbid")

    versions: list[VersionRoute] = Field(min_length=1)
    shadow: ShadowRoute | None = None

    @model_validator(mode="after")
    def _check(self) -> RoutingTable:
        total = sum(v.weight for v in self.versions)
        if abs(total - 100.0) > 1e-6:
            weights = ", ".join(f"{v.name}={v.weight:g}" for v in self.versions)
            raise ValueError(f"version weights must sum to 100, got {total:g} ({weights})")
        names = [v.name for v in self.versions] + ([self.shadow.name] if self.shadow else [])
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique, repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def single(cls, model_tag: str, name: str = "primary") -> RoutingTable:
        """Everything to one version (the embedded default)."""
        return cls(versions=[VersionRoute(name=name, model_tag=model_tag, weight=100.0)])

    def model_tags(self) -> list[str]:
        """Every model tag the table needs loaded (serving versions first, then the shadow)."""
        tags = [v.model_tag for v in self.versions]
        if self.shadow is not None and self.shadow.model_tag not in tags:
            tags.append(self.shadow.model_tag)
        return list(dict.fromkeys(tags))


class RoutingTableError(ValueError):
    """A routing table file that cannot be used (unreadable, not YAML/JSON, invalid)."""


def parse_routing_table(text: str, source: str = "<string>") -> RoutingTable:
    """Parse YAML or JSON text into a validated table; errors name the source and field."""
    import yaml

    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise RoutingTableError(f"{source}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RoutingTableError(
            f"{source}: expected a mapping with 'versions' (and optional 'shadow'), "
            f"got {type(data).__name__}"
        )
    try:
        return RoutingTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'table'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise RoutingTableError(f"{source}: invalid routing table: {problems}") from None


def load_routing_table(path: str | Path) -> RoutingTable:
    """Read and validate a routing table file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RoutingTableError(f"{p}: cannot read the routing table: {exc.strerror}") from None
    return parse_routing_table(text, str(p))


def write_routing_table(table: RoutingTable | dict[str, Any], path: str | Path) -> Path:
    """Write a table atomically (temp file + rename), as a reader must never see half a file."""
    if isinstance(table, dict):
        table = RoutingTable.model_validate(table)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table.model_dump(exclude_none=True), indent=2) + "\n")
    os.replace(tmp, p)
    return p


def bucket_of(key: str, salt: str = "") -> int:
    """Stable bucket in [0, BUCKETS) of a key: same key, same bucket, in every process.

    Python's ``hash`` is salted per process, so a keyed BLAKE2b digest is used instead.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


Role = Literal["primary", "canary", "shadow"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes: the route name, its model tag and its role."""

    name: str
    model_tag: str
    role: Role


class Router:
    """Picks the version for a routing key, and whether the shadow mirrors it.

    Built once per table; ``route`` is a hash and a short scan (no locks), so it is safe to
    call from any thread while a reload swaps in a new :class:`Router`.
    """

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self._cuts: list[tuple[int, Route]] = []
        edge = 0.0
        for i, v in enumerate(table.versions):
            edge += v.weight
            role: Role = "primary" if i == 0 else "canary"
            self._cuts.append((round(edge * BUCKETS / 100.0), Route(v.name, v.model_tag, role)))
        shadow = table.shadow
        self._shadow = Route(shadow.name, shadow.model_tag, "shadow") if shadow else None
        self._shadow_cut = round(shadow.percent * BUCKETS / 100.0) if shadow else 0

    def pick(self, key: str) -> tuple[Route, Route | None]:
        """``(route(key), shadow(key))``."""
        return self.route(key), self.shadow(key)

    def route(self, key: str) -> Route:
        """The serving version for ``key`` (weights in proportion, sticky per key)."""
        b = bucket_of(key, "route")
        for cut, route in self._cuts:
            if b < cut:
                return route
        # Zero-weight tail entries: the last version with a weight takes the rest.
        return next(r for cut, r in reversed(self._cuts) if cut > 0)

    def shadow(self, key: str) -> Route | None:
        """The shadow version when ``key`` falls in the mirrored share, else None.

        An independent hash (another salt), so the mirrored share is spread evenly over the
        serving versions.
        """
        if self._shadow is None or bucket_of(key, "shadow") >= self._shadow_cut:
            return None
        return self._shadow


class StaticRouting:
    """A fixed routing table (no file): the embedded default, tests and the benchmark."""

    path: Path | None = None

    def __init__(self, table: RoutingTable) -> None:
        self.router = Router(table)
        self.loaded_at = datetime.now(UTC)

    @property
    def table(self) -> RoutingTable:
        return self.router.table


class RoutingTableFile:
    """A routing table read from a file and re-read when the file changes.

    A daemon thread polls ``os.stat`` every ``interval`` seconds (ConfigMap updates swap a
    symlink, which changes the target's inode/mtime); the request path only reads
    :attr:`router`. A new table is first handed to ``on_change`` (e.g. to load its models);
    when parsing or ``on_change`` fails the error is logged and the last good table stays.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        interval: float = 1.0,
        on_change: Callable[[RoutingTable], None] | None = None,
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.on_change = on_change
        self.on_reject = on_reject  # e.g. a metric: a refused file is otherwise only a log line
        self._signature: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.rejected = 0
        self.last_error: str | None = None
        table = load_routing_table(self.path)  # the first table must be valid: fail at start
        if on_change is not None:
            on_change(table)
        self._signature = self._stat()
        self.router = Router(table)
        self.loaded_at = datetime.now(UTC)

    @property
    def table(self) -> RoutingTable:
        return self.router.table

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def check(self) -> bool:
        """Re-read the file if it changed; True when a new table took effect."""
        sig = self._stat()
        if sig == self._signature:
            return False
        self._signature = sig
        if sig is None:
            self.rejected += 1
            self.last_error = f"{self.path}: routing table file disappeared"
            log.error("%s; keeping the last good table", self.last_error)
            self._rejected()
            return False
        try:
            table = load_routing_table(self.path)
            if table == self.router.table:
                return False
            if self.on_change is not None:
                self.on_change(table)
        except Exception as exc:
            self.rejected += 1
            self.last_error = str(exc)
            log.error("routing table refused, keeping the last good table: %s", exc)
            self._rejected()
            return False
        self.router = Router(table)
        self.loaded_at = datetime.now(UTC)
        self.reloads += 1
        self.last_error = None
        log.info(
            "routing table reloaded from %s: %s%s",
            self.path,
            ", ".join(f"{v.name}={v.weight:g}%" for v in table.versions),
            f", shadow {table.shadow.name} {table.shadow.percent:g}%" if table.shadow else "",
        )
        return True

    def _rejected(self) -> None:
        if self.on_reject is not None:
            self.on_reject()

    def start(self) -> None:
        """Poll the file in a daemon thread."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="augur-routing", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watcher must survive anything
                log.exception("routing table watcher")


__all__ = [
    "BUCKETS",
    "Route",
    "Router",
    "RoutingTable",
    "RoutingTableError",
    "RoutingTableFile",
    "ShadowRoute",
    "StaticRouting",
    "VersionRoute",
    "bucket_of",
    "load_routing_table",
    "parse_routing_table",
    "write_routing_table",
]
