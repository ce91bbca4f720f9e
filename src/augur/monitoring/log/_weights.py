"""Member probabilities and shared member weights in the prediction log's database.

``member_probabilities``: what each member of a version said about one feature row,
keyed by (model version, features digest) and written once per row the service scores
(an INSERT that keeps the first row for a key). An outcome finds them through its
request's logged prediction, which carries the same digest.

``ensemble_weights``: each version's :class:`~augur.models.DynamicWeights` state as
outcomes have moved it (the members' log-score averages, the number of outcomes folded
in, the frozen flag). Every worker of every replica reads it and writes it:

- a write is a compare-and-set on the row's ``revision`` (read the row, fold the outcome
  in, ``UPDATE ... WHERE revision = <read>``; another writer in between makes the UPDATE
  touch no row, and it is done again on the new row), so concurrent outcomes are each
  folded in once, the same on SQLite and PostgreSQL, without holding a lock while the
  worker computes;
- a version without a row starts from the weights it was trained with (its saved state):
  a worker that loads the version seeds its row with them (:func:`seed_weights`, which
  leaves an existing row alone); the row keeps the rule's settings too, so a worker that
  has not loaded the version (a shadow scored in another process) can update it;
- an outcome's request id is stored with the version in ``weights_outcomes`` in the same
  transaction, so a retried outcome moves the weights once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from augur.models import DynamicWeights
from augur.monitoring.log._schema import (
    member_probs_table,
    utcnow,
    weights_outcomes_table,
    weights_table,
)

# Compare-and-set attempts before an update gives up (each lost race means another
# writer's update went in: thousands of concurrent outcomes on one version).
_CAS_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class MemberProbs:
    """One row's member probabilities (``(members, 3)``, columns down, flat, up, in
    ``names`` order) and its label threshold (None: no volatility to scale it by)."""

    names: tuple[str, ...]
    probs: np.ndarray
    label_threshold: float | None

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """The probabilities in ``names`` order; ValueError naming a missing member."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"member probabilities lack member(s) {missing}")
        return self.probs[[self.names.index(n) for n in names]]


@dataclass(frozen=True, slots=True)
class WeightsRow:
    """One version's shared weights state."""

    model_version: str
    names: tuple[str, ...]
    settings: dict[str, Any]
    perf: tuple[float, ...]
    n_updates: int
    frozen: bool
    revision: int

    def weights(self) -> DynamicWeights:
        """The weights this row holds, with its own settings."""
        return DynamicWeights.from_state(
            {
                "names": list(self.names),
                "decay": self.settings["decay"],
                "floor": self.settings["floor"],
                "max_step": self.settings.get("max_step"),
                "perf": list(self.perf),
                "n_updates": self.n_updates,
                "frozen": self.frozen,
            }
        )

    def applied_to(self, base: DynamicWeights) -> DynamicWeights:
        """``base`` (the version's trained weights: names, decay, floor, bound) with this
        row's log-score averages, count and frozen flag."""
        if tuple(self.names) != tuple(base.names):
            raise ValueError(
                f"ensemble_weights row of {self.model_version!r} names members "
                f"{list(self.names)}, the version has {list(base.names)}"
            )
        state = {
            **base.state(),
            "perf": list(self.perf),
            "n_updates": self.n_updates,
            "frozen": self.frozen,
        }
        return DynamicWeights.from_state(state)


def member_probs_row(
    model_version: str,
    features_digest: str,
    probs: Mapping[str, Sequence[float]],
    label_threshold: float | None,
) -> dict[str, Any]:
    """A row of ``member_probabilities``; ValueError naming the field when a value cannot
    be stored."""
    if not isinstance(model_version, str) or not 0 < len(model_version) <= 128:
        raise ValueError(f"model_version must be 1..128 characters, got {model_version!r:.40}")
    if not isinstance(features_digest, str) or not 0 < len(features_digest) <= 64:
        raise ValueError(f"features_digest must be 1..64 characters, got {features_digest!r:.40}")
    clean: dict[str, list[float]] = {}
    for name, triple in probs.items():
        values = [float(v) for v in triple]
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"probs[{name!r}] must be 3 finite numbers, got {triple!r:.60}")
        clean[str(name)] = values
    if not clean:
        raise ValueError("probs must name at least one member")
    if label_threshold is not None and not (
        math.isfinite(label_threshold) and label_threshold >= 0
    ):
        raise ValueError(f"label_threshold must be a finite number >= 0, got {label_threshold!r}")
    return {
        "model_version": model_version,
        "features_digest": features_digest,
        "probs": json.dumps(clean),
        "label_threshold": None if label_threshold is None else float(label_threshold),
        "ts": utcnow(),
    }


def insert_member_probs(engine: sa.Engine, rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Write ``rows`` (from :func:`member_probs_row`), keeping the row already stored for a
    key (the same row scored again, by another worker); returns (written, 0)."""
    if not rows:
        return 0, 0
    first: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in rows:
        first.setdefault((r["model_version"], r["features_digest"]), r)
    unique = list(first.values())
    with engine.begin() as conn:
        conn.execute(_insert_ignoring(conn.dialect.name, member_probs_table), unique)
    return len(rows), 0


def read_member_probs(engine: sa.Engine, model_version: str, digest: str) -> MemberProbs | None:
    """The member probabilities of one (version, feature row); None when not stored."""
    t = member_probs_table
    query = sa.select(t.c.probs, t.c.label_threshold).where(
        t.c.model_version == model_version, t.c.features_digest == digest
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    probs = json.loads(row[0])
    names = tuple(probs)
    threshold = None if row[1] is None else float(row[1])
    return MemberProbs(names, np.array([probs[n] for n in names], dtype=np.float64), threshold)


def read_weights(engine: sa.Engine) -> dict[str, WeightsRow]:
    """Every version's shared weights state, by version."""
    query = sa.select(*_COLUMNS)
    with engine.connect() as conn:
        return {row[0]: _weights_row(row) for row in conn.execute(query)}


_COLUMNS = tuple(
    weights_table.c[name]
    for name in ("model_version", "names", "settings", "perf", "n_updates", "frozen", "revision")
)


def _weights_row(row: Any) -> WeightsRow:
    version, names, settings, perf, n_updates, frozen, revision = row
    return WeightsRow(
        str(version),
        tuple(json.loads(names)),
        dict(json.loads(settings)),
        tuple(float(v) for v in json.loads(perf)),
        int(n_updates),
        bool(frozen),
        int(revision),
    )


def _read_one(conn: sa.Connection, model_version: str) -> WeightsRow | None:
    t = weights_table
    query = sa.select(*_COLUMNS).where(t.c.model_version == model_version)
    row = conn.execute(query).first()
    return None if row is None else _weights_row(row)


def _write(
    conn: sa.Connection, model_version: str, dw: DynamicWeights, revision: int | None
) -> bool:
    """Store ``dw`` as the version's row: a new row when ``revision`` is None (False if
    another writer created it first), else only over the row still at ``revision``."""
    values = {
        "names": json.dumps(list(dw.names)),
        "settings": json.dumps({"decay": dw.decay, "floor": dw.floor, "max_step": dw.max_step}),
        "perf": json.dumps(dw.perf.tolist()),
        "n_updates": dw.n_updates,
        "frozen": dw.frozen,
        "updated_at": utcnow(),
    }
    t = weights_table
    # RETURNING says whether the row went in: an INSERT ... ON CONFLICT DO NOTHING's
    # rowcount is -1 through psycopg
    if revision is None:
        stmt = _insert_ignoring(conn.dialect.name, t).returning(t.c.revision)
        result = conn.execute(stmt, {"model_version": model_version, "revision": 1, **values})
    else:
        result = conn.execute(
            t.update()
            .where(t.c.model_version == model_version, t.c.revision == revision)
            .values(revision=revision + 1, **values)
            .returning(t.c.revision)
        )
    return result.first() is not None


def update_weights(
    engine: sa.Engine,
    model_version: str,
    base: DynamicWeights | None,
    outcomes: Iterable[tuple[np.ndarray, int]],
    outcome_id: str | None = None,
) -> DynamicWeights:
    """Fold ``outcomes`` ((members, 3) probabilities in the members' order, realised
    label) into the version's shared weights in one compare-and-set; returns the weights
    now stored. A frozen version's are returned unchanged (nothing is written), and so
    are they when ``outcome_id`` (the outcome's request id) was folded in before.
    ``base``: the version's trained weights, needed only when it has no row yet
    (LookupError without)."""
    todo = list(outcomes)
    applied = weights_outcomes_table
    for _ in range(_CAS_ATTEMPTS):
        with engine.begin() as conn:
            row = _read_one(conn, model_version)
            dw = _current(model_version, row, base)
            if dw.frozen or not todo:
                return dw
            if outcome_id is not None:
                seen = sa.select(applied.c.request_id).where(
                    applied.c.request_id == outcome_id, applied.c.model_version == model_version
                )
                if conn.execute(seen).first() is not None:
                    return dw
            for probs, label in todo:
                dw.update(probs, label)
            if _write(conn, model_version, dw, None if row is None else row.revision):
                if outcome_id is not None:
                    conn.execute(
                        applied.insert(),
                        [{"request_id": outcome_id, "model_version": model_version,
                          "ts": utcnow()}],
                    )  # fmt: skip
                return dw
    raise RuntimeError(
        f"the weights of {model_version!r} were changed by other writers {_CAS_ATTEMPTS} "
        "times in a row; the outcome was not folded in"
    )


def _current(
    model_version: str, row: WeightsRow | None, base: DynamicWeights | None
) -> DynamicWeights:
    """The version's weights now: its row's, else its trained ones."""
    if row is not None:
        return row.applied_to(base) if base is not None else row.weights()
    if base is None:
        raise LookupError(
            f"no shared weights for {model_version!r} yet, and its trained weights are not "
            "at hand (load the version)"
        )
    return DynamicWeights.from_state(base.state())


def seed_weights(engine: sa.Engine, model_version: str, base: DynamicWeights) -> bool:
    """Start the version's row from its trained weights unless it has one; True when
    this call created it."""
    with engine.begin() as conn:
        return _write(conn, model_version, DynamicWeights.from_state(base.state()), None)


def set_frozen(
    engine: sa.Engine, model_version: str, frozen: bool, base: DynamicWeights | None = None
) -> WeightsRow:
    """Freeze (or unfreeze) a version's shared weights; returns the row after. A version
    without a row yet needs ``base`` (its trained weights) to start one; LookupError
    when it is not given."""
    t = weights_table
    for _ in range(_CAS_ATTEMPTS):
        with engine.begin() as conn:
            row = _read_one(conn, model_version)
            if row is not None and row.frozen == frozen:
                return row
            if row is not None:
                done = (
                    conn.execute(
                        t.update()
                        .where(t.c.model_version == model_version, t.c.revision == row.revision)
                        .values(frozen=frozen, revision=row.revision + 1, updated_at=utcnow())
                        .returning(t.c.revision)
                    ).first()
                    is not None
                )
            elif base is None:
                raise LookupError(
                    f"no shared weights for {model_version!r} yet: give its trained weights"
                )
            else:
                dw = DynamicWeights.from_state(base.state())
                dw.frozen = frozen
                done = _write(conn, model_version, dw, None)
            if done:
                after = _read_one(conn, model_version)
                assert after is not None
                return after
    raise RuntimeError(f"the weights of {model_version!r} kept changing; try again")


def _insert_ignoring(dialect: str, table: sa.Table) -> Any:
    """An INSERT that leaves an existing row with the same key as it is."""
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - SQLite and PostgreSQL are the ones supported
        return table.insert().prefix_with("IGNORE")
    return insert(table).on_conflict_do_nothing()


def realised_label(realized_return: float, label_threshold: float | None) -> int:
    """The class of a realised return by training's labelling rule
    (:mod:`augur.features.labels`): up above the threshold, down below minus it, flat in
    between; with no threshold (no volatility known) the sign alone (0 is flat)."""
    if not math.isfinite(realized_return):
        raise ValueError(f"realized_return must be a finite number, got {realized_return!r}")
    band = label_threshold or 0.0
    if realized_return > band:
        return 1
    if realized_return < -band:
        return -1
    return 0


__all__ = [
    "MemberProbs",
    "WeightsRow",
    "insert_member_probs",
    "member_probs_row",
    "read_member_probs",
    "read_weights",
    "realised_label",
    "seed_weights",
    "set_frozen",
    "update_weights",
]
