"""Opening the log's database: SQLite settings, the default URL, and errors at start
that name AUGUR_PREDICTION_LOG_URL and the fix."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from augur.config import Settings
from augur.monitoring.log import PredictionLog, default_log_url
from augur.monitoring.log._engine import open_engine
from tests.unit.monitoring.log.conftest import record


def test_sqlite_file_uses_wal_and_a_small_cache(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'nested' / 'log.db'}")  # makes the folder
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        # a small page cache (negative: KiB), not SQLite's 2 MiB default
        assert conn.execute(sa.text("PRAGMA cache_size")).scalar() == -1024
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()


def test_sqlite_log_keeps_only_the_indexes_its_reads_use(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("predictions")}
        tables = set(sa.inspect(conn).get_table_names())
    assert indexes == {"ix_predictions_ts"}  # plus the primary key's own
    # plus the member probabilities and shared member weights (monitoring/log/_weights.py)
    assert tables == {"predictions", "outcomes", "drift", "member_probabilities",
                      "ensemble_weights", "weights_outcomes"}  # fmt: skip
    engine.dispose()


def test_opening_an_existing_log_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with PredictionLog(url) as first:
        first.log_prediction(record("r1"))
    with PredictionLog(url, start=False) as again:
        assert again.count() == 1


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    with PredictionLog("sqlite://") as plog:
        plog.log_prediction(record("r1"))  # written on the writer thread
        assert plog.log_outcome("r1", 0.5)
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(len(plog.frame())))
        reader.start()
        reader.join()
        assert seen == [1]


def test_default_log_url(tmp_path: Path) -> None:
    assert default_log_url(Settings(home=tmp_path)) == (
        f"sqlite:///{tmp_path.resolve() / 'serving' / 'predictions.db'}"
    )
    assert default_log_url(Settings(prediction_log_url="postgresql://u@h/db")) == (
        "postgresql://u@h/db"
    )


def test_default_log_url_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augur.config import get_settings

    monkeypatch.setenv("AUGUR_PREDICTION_LOG_URL", "sqlite:///elsewhere.db")
    get_settings.cache_clear()
    try:
        assert default_log_url() == "sqlite:///elsewhere.db"
    finally:
        get_settings.cache_clear()


def test_log_url_errors_name_the_setting_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"AUGUR_PREDICTION_LOG_URL.*postgresql\+psycopg://"):
        PredictionLog("not a url")
    with pytest.raises(ValueError, match=r"AUGUR_PREDICTION_LOG_URL.*unknown database dialect"):
        PredictionLog("nosuchdb://u@h/db")
    # psycopg2 is not what Augur pins: the message says which URL form works.
    with pytest.raises(ValueError, match="AUGUR_PREDICTION_LOG_URL") as missing:
        PredictionLog("postgresql+psycopg2://u:secret@127.0.0.1/db")
    assert "'psycopg2', which is not installed" in str(missing.value)
    assert "postgresql+psycopg://" in str(missing.value)
    assert "psycopg[binary]" in str(missing.value)
    assert "secret" not in str(missing.value)


def test_unreachable_server_fails_fast_naming_the_setting() -> None:
    from tests.conftest import free_port

    url = f"postgresql+psycopg://augur:secret@127.0.0.1:{free_port()}/augur"  # nobody listens
    with pytest.raises(ValueError, match="cannot open the prediction log") as refused:
        PredictionLog(url)
    assert "AUGUR_PREDICTION_LOG_URL" in str(refused.value)
    assert "127.0.0.1" in str(refused.value)
    assert "secret" not in str(refused.value)
