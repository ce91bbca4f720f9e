""":class:`PredictionLog`, the prediction/outcome log as the service and the report use
it: it opens the database, hands predictions to the background writer, joins outcomes
to logged requests (waiting briefly when another worker may still hold the prediction),
stores drift statistics, and answers the reads."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from augur.monitoring.log import _queries
from augur.monitoring.log._engine import open_engine
from augur.monitoring.log._insert import insert_drift, insert_outcome, insert_predictions
from augur.monitoring.log._schema import PredictionRecord
from augur.monitoring.log._writer import BatchWriter, LogStats, LogUnavailable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from augur.models import DynamicWeights
    from augur.monitoring.log._weights import MemberProbs, WeightsRow

# How often log_outcome looks again for a prediction another worker has yet to write.
_OUTCOME_POLL_SECONDS = 0.05
# How long log_outcome looks, at least, before it calls a request id unknown.
_OTHER_WRITER_SECONDS = 1.0


@contextlib.contextmanager
def _unreachable_as_unavailable(engine: Any) -> Iterator[None]:
    """A lost or refused connection to a database server, or a full disk under SQLite, as
    :class:`LogUnavailable` (the writer keeps the batch for later, an outcome is answered
    503); every other error as it is. SQLite has no server to lose: its other errors stay
    errors."""
    import sqlite3

    import sqlalchemy as sa

    try:
        yield
    except sa.exc.DBAPIError as exc:
        server = engine.dialect.name != "sqlite"
        full = getattr(exc.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        if (
            exc.connection_invalidated
            or full
            or (server and isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError))
        ):
            cause = str(exc.orig or exc).strip().splitlines()
            raise LogUnavailable(cause[0] if cause else type(exc).__name__) from exc
        raise


class UnknownRequestIdError(KeyError):
    """An outcome named a request id that was never logged (the service answers 404)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id

    def __str__(self) -> str:
        return (
            f"unknown request_id {self.request_id!r}: no prediction was logged under it "
            "(use the request_id returned by /decide)"
        )


class PredictionLog:
    """Prediction and outcome log behind a non-blocking buffered writer.

    ``url`` is a SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://…``);
    tables are created when missing. :meth:`log_prediction` enqueues and never blocks
    (a full buffer of ``max_queue`` records drops the record, counted in
    ``stats.dropped`` and reported to ``on_drop``; a batch the database cannot take now,
    unreachable or its disk full, stays buffered and is reported to ``on_unavailable``);
    a background thread writes the buffer
    in batches of up to ``batch_size`` records, ``linger`` seconds after the first one
    arrives. :meth:`flush` waits until everything enqueued so far is written;
    :meth:`close` flushes and stops the writer. Safe to share between threads. Dropped
    records are also warned about, at most once a minute. ``writer_priority="idle"``:
    see :class:`~augur.monitoring.log._writer.BatchWriter`.
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 512,
        linger: float = 0.05,
        start: bool = True,
        on_drop: Callable[[], None] | None = None,
        on_unavailable: Callable[[], None] | None = None,
        writer_priority: Literal["normal", "idle"] = "normal",
    ) -> None:
        self._writer = BatchWriter(
            self._insert_batch,
            max_queue=max_queue,
            batch_size=batch_size,
            linger=linger,
            on_drop=on_drop,
            on_unavailable=on_unavailable,
            priority=writer_priority,
        )
        # Member probabilities (once per scored feature row) have a writer of their own,
        # so a busy request path never holds them up behind predictions, or the reverse.
        self._members = BatchWriter(
            self._insert_members,
            max_queue=max_queue,
            batch_size=batch_size,
            linger=linger,
            priority=writer_priority,
        )
        self.url = url
        self.engine = open_engine(url)  # after the writer has checked its settings
        if start:
            self.start()

    # --- predictions --------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer (done by the constructor unless ``start=False``)."""
        self._writer.start()
        self._members.start()

    def log_prediction(self, record: PredictionRecord) -> bool:
        """Enqueue one prediction; never blocks. False (and counted) when the buffer is
        full. Raises ``RuntimeError`` once the log is closed."""
        if not isinstance(record, PredictionRecord):
            raise TypeError(f"log_prediction takes a PredictionRecord, got {type(record).__name__}")
        return self._writer.put(record)

    def log_predictions(self, records: Iterable[PredictionRecord]) -> int:
        """Enqueue many predictions; returns how many were accepted."""
        return sum(self.log_prediction(r) for r in records)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything enqueued so far is written (or failed). False on timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the writer thread and release the connections. Idempotent."""
        if self._writer.closed:
            return
        self._writer.flush(timeout)
        self._members.flush(timeout)
        self._writer.stop(timeout)
        self._members.stop(timeout)
        self.engine.dispose()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> LogStats:
        """Writer counters: enqueued, written, dropped (buffer full), failed (refused by
        the database, or a failed batch), pending."""
        return self._writer.stats

    def _insert_batch(self, batch: list[PredictionRecord]) -> tuple[int, int]:
        with _unreachable_as_unavailable(self.engine):
            return insert_predictions(self.engine, batch)

    # --- member probabilities and shared weights ----------------------------------------
    def log_member_probs(
        self,
        model_version: str,
        features_digest: str,
        probs: Mapping[str, Any],
        label_threshold: float | None,
    ) -> bool:
        """Enqueue what each member said about one feature row (``probs``: member →
        (p_down, p_flat, p_up)); never blocks. False when the buffer is full. Raises
        ``ValueError`` naming the field for a value that cannot be stored."""
        from augur.monitoring.log._weights import member_probs_row

        row = member_probs_row(model_version, features_digest, probs, label_threshold)
        return self._members.put(row)  # type: ignore[arg-type]

    def _insert_members(self, batch: list[Any]) -> tuple[int, int]:
        from augur.monitoring.log._weights import insert_member_probs

        with _unreachable_as_unavailable(self.engine):
            return insert_member_probs(self.engine, batch)

    def member_probs(self, model_version: str, features_digest: str) -> MemberProbs | None:
        """The member probabilities logged for (version, feature row), waiting as
        :meth:`log_outcome` does for a row this or another worker may still hold."""
        from augur.monitoring.log._weights import read_member_probs

        found = read_member_probs(self.engine, model_version, features_digest)
        if found is not None:
            return found
        self._members.flush(timeout=5.0)
        deadline = time.monotonic() + 4 * self._members.linger
        while True:
            found = read_member_probs(self.engine, model_version, features_digest)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(_OUTCOME_POLL_SECONDS)

    def prediction_inputs(self, request_id: str) -> list[tuple[str, str, str]]:
        """(model version, role, features digest) of each logged prediction of
        ``request_id``."""
        return _queries.prediction_inputs(self.engine, request_id)

    def weights(self) -> dict[str, WeightsRow]:
        """Every version's shared member weights state (versions no outcome has moved
        and nobody has frozen have no row)."""
        from augur.monitoring.log._weights import read_weights

        return read_weights(self.engine)

    def update_weights(
        self,
        model_version: str,
        base: DynamicWeights | None,
        outcomes: Iterable[tuple[np.ndarray, int]],
        outcome_id: str | None = None,
    ) -> DynamicWeights:
        """Fold outcomes into a version's shared weights (atomically, once per
        ``outcome_id``: see :mod:`augur.monitoring.log._weights`); returns the weights
        stored after. ``base``, the version's trained weights, is needed only when it
        has no row yet (LookupError without)."""
        from augur.monitoring.log._weights import update_weights

        return update_weights(self.engine, model_version, base, outcomes, outcome_id)

    def seed_weights(self, model_version: str, base: DynamicWeights) -> bool:
        """Start a version's shared weights from its trained ones unless it has a row;
        True when this call created it."""
        from augur.monitoring.log._weights import seed_weights

        return seed_weights(self.engine, model_version, base)

    def set_weights_frozen(
        self, model_version: str, frozen: bool = True, base: DynamicWeights | None = None
    ) -> WeightsRow:
        """Freeze (or unfreeze) a version's shared weights: frozen, outcomes move them no
        more. A version no outcome has moved yet needs ``base``, its trained weights
        (LookupError without)."""
        from augur.monitoring.log._weights import set_frozen

        return set_frozen(self.engine, model_version, frozen, base)

    # --- outcomes -----------------------------------------------------------------------
    def log_outcome(self, request_id: str, realized_return: float, caller: str = "") -> bool:
        """Join a realised return to a logged prediction (synchronous).

        Returns False when no prediction carries ``request_id`` (the service answers 404);
        :meth:`record_outcome` raises :class:`UnknownRequestIdError` instead. Posting again
        for the same request replaces the earlier outcome (idempotent retries). Raises
        :class:`LogUnavailable` when the database cannot be reached, or the prediction is
        not found while the rows of an outage are still being written.
        """
        if not isinstance(realized_return, int | float) or not math.isfinite(realized_return):
            raise ValueError(f"realized_return must be a finite number, got {realized_return!r}")
        value = float(realized_return)
        with _unreachable_as_unavailable(self.engine):
            return self._join_outcome(request_id, value, caller)

    def _join_outcome(self, request_id: str, value: float, caller: str) -> bool:
        if insert_outcome(self.engine, request_id, value, caller):
            return True
        # The prediction may still be in this log's buffer (or be written just now):
        # flush once and look again before calling the id unknown.
        self.flush(timeout=5.0)
        if insert_outcome(self.engine, request_id, value, caller):
            return True
        # Another worker process's writer may hold it for two lingers, and longer on a
        # busy machine (its thread waits for the CPU and the GIL too): look again until
        # then, for a second at least.
        deadline = time.monotonic() + max(4 * self._writer.linger, _OTHER_WRITER_SECONDS)
        while time.monotonic() < deadline:
            time.sleep(min(_OUTCOME_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if insert_outcome(self.engine, request_id, value, caller):
                return True
        if self._writer.catching_up:
            raise LogUnavailable(
                f"request_id {request_id!r} is not in the log yet: its rows of a database "
                "outage are still being written"
            )
        return False

    def record_outcome(self, request_id: str, realized_return: float, caller: str = "") -> None:
        """Like :meth:`log_outcome` but raises :class:`UnknownRequestIdError`."""
        if not self.log_outcome(request_id, realized_return, caller):
            raise UnknownRequestIdError(request_id)

    # --- drift, reads, retention ----------------------------------------------------------
    def log_drift(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store drift statistics (one row per model version and feature); synchronous."""
        return insert_drift(self.engine, rows)

    def drift_frame(self) -> pd.DataFrame:
        """The latest drift statistics per model version (empty frame when none)."""
        return _queries.drift_frame(self.engine)

    def frame(self, since: datetime | None = None) -> pd.DataFrame:
        """Every logged prediction (since ``since``) with its outcome, if any.

        Columns: the prediction fields, plus ``realized_return``, ``outcome_ts`` and
        ``caller`` (NaN/None where no outcome was reported). Sorted by ``ts``.
        """
        return _queries.frame(self.engine, since)

    def prune(self, before: datetime) -> int:
        """Delete predictions (and their outcomes, and drift rows) older than ``before``.

        The log otherwise grows forever; run this from a periodic job. Returns the
        number of predictions deleted.
        """
        return _queries.prune(self.engine, before)

    def count(self) -> int:
        """Number of logged predictions (all roles)."""
        return _queries.count(self.engine)
