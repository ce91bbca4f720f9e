"""Member probabilities and shared member weights in the log's database, on SQLite and on
a real PostgreSQL: the first row for a (version, feature row) is kept; concurrent outcomes
from several threads are each folded in once (compare-and-set); an outcome's request id
moves the weights once; frozen weights ignore outcomes; a seeded row starts from the
trained weights; prune drops old member probabilities."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from augur.models import DynamicWeights
from augur.monitoring.log import PredictionLog

UP = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])


def base() -> DynamicWeights:
    return DynamicWeights(["a", "b"], decay=0.8, floor=0.01, max_step=2.5)


def test_member_probabilities_keep_the_first_row_for_a_key(log: PredictionLog) -> None:
    assert log.member_probs("v1", "d" * 32) is None
    log.log_member_probs("v1", "d" * 32, {"a": (0.1, 0.2, 0.7), "b": (0.6, 0.3, 0.1)}, 0.004)
    log.log_member_probs("v1", "d" * 32, {"a": (0.3, 0.3, 0.4), "b": (0.3, 0.3, 0.4)}, 0.1)
    log.log_member_probs("v2", "d" * 32, {"a": (0.3, 0.3, 0.4)}, None)
    got = log.member_probs("v1", "d" * 32)  # waits for the writer
    assert got is not None and got.names == ("a", "b")
    np.testing.assert_allclose(got.probs, UP)
    assert got.label_threshold == pytest.approx(0.004)
    np.testing.assert_allclose(got.matrix(["b", "a"]), UP[::-1])
    with pytest.raises(ValueError, match=r"lack member\(s\) \['c'\]"):
        got.matrix(["a", "c"])
    other = log.member_probs("v2", "d" * 32)
    assert other is not None and other.label_threshold is None


def test_concurrent_outcomes_are_each_folded_in_once(log: PredictionLog) -> None:
    log.seed_weights("v1", base())
    n_threads, per_thread = 4, 5

    def post(k: int) -> None:
        for i in range(per_thread):
            log.update_weights("v1", base(), [(UP, 1)], outcome_id=f"r-{k}-{i}")

    threads = [threading.Thread(target=post, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = log.weights()["v1"]
    assert row.n_updates == n_threads * per_thread
    expected = base()
    for _ in range(n_threads * per_thread):
        expected.update(UP, 1)
    np.testing.assert_allclose(row.weights().weights, expected.weights, rtol=1e-12)
    assert row.weights().max_step == 2.5 and row.settings["decay"] == 0.8
    # a retried outcome: nothing moves
    log.update_weights("v1", base(), [(UP, 1)], outcome_id="r-0-0")
    assert log.weights()["v1"].n_updates == n_threads * per_thread


def test_frozen_weights_and_versions_without_a_row(log: PredictionLog) -> None:
    with pytest.raises(LookupError, match="no shared weights"):
        log.update_weights("v9", None, [(UP, 1)])
    first = log.update_weights("v1", base(), [(UP, 1)], outcome_id="r-1")  # creates the row
    assert first.n_updates == 1 and not log.seed_weights("v1", base())  # kept as it is
    row = log.set_weights_frozen("v1", True)
    assert row.frozen and row.n_updates == 1
    assert log.update_weights("v1", None, [(UP, -1)], outcome_id="r-2").n_updates == 1
    assert log.weights()["v1"].n_updates == 1
    assert not log.set_weights_frozen("v1", False).frozen
    assert log.update_weights("v1", None, [(UP, -1)], outcome_id="r-2").n_updates == 2
    revisions = log.weights()["v1"].revision
    assert revisions == 4  # created, frozen, unfrozen, updated


def test_a_row_naming_other_members_is_refused(log: PredictionLog) -> None:
    log.seed_weights("v1", base())
    other = DynamicWeights(["x", "y"])
    with pytest.raises(ValueError, match="names members"):
        log.update_weights("v1", other, [(UP, 1)])


def test_prune_drops_old_member_probabilities(log: PredictionLog) -> None:
    log.log_member_probs("v1", "d" * 32, {"a": (0.1, 0.2, 0.7)}, None)
    log.update_weights("v1", base(), [(UP, 1)], outcome_id="r-1")
    assert log.member_probs("v1", "d" * 32) is not None
    log.prune(datetime.now(UTC) + timedelta(seconds=1))
    assert log.member_probs("v1", "d" * 32) is None
    assert log.weights()["v1"].n_updates == 1  # the weights are state, not history
