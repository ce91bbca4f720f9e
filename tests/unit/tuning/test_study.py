"""Study-file validation: every bad input fails before Ray starts, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from augur.tuning import StudyError, load_study, parse_study
from tests.unit.tuning.helpers import make_study

STUDIES = sorted(Path(__file__).resolve().parents[3].joinpath("tuning", "studies").glob("*.yaml"))


def _error(raw: dict) -> str:
    with pytest.raises(StudyError) as info:
        parse_study(raw)
    return str(info.value)


def test_valid_study_parses(bars_root: Path, tmp_path: Path) -> None:
    study = parse_study(make_study(bars_root, tmp_path))
    assert study.trials == 4
    assert study.resolved_storage() == str((tmp_path / "store").resolve())
    assert not study.multi_objective


def test_unknown_parameter_is_named(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["model.rf_depth"] = {"type": "int", "low": 2, "high": 5}
    msg = _error(raw)
    assert "search_space.model.rf_depth" in msg and "unknown parameter" in msg


def test_empty_range_is_named(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["decision.kelly_fraction"] = {"type": "float", "low": 0.5, "high": 0.5}
    msg = _error(raw)
    assert "search_space.decision.kelly_fraction" in msg and "empty range" in msg


@pytest.mark.parametrize(
    ("dist", "expected"),
    [
        ({"type": "normal", "low": 0.1, "high": 0.5}, "search_space.decision.kelly_fraction"),
        ({"type": "float", "low": 0.0, "high": 0.5, "log": True}, "log=true needs low > 0"),
        ({"type": "float", "low": 0.1}, "high"),
        ({"type": "categorical", "choices": [0.1]}, "at least 2 choices"),
    ],
)
def test_bad_distribution_is_named(
    bars_root: Path, tmp_path: Path, dist: dict, expected: str
) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["decision.kelly_fraction"] = dist
    assert expected in _error(raw)


def test_value_outside_what_the_config_accepts(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["decision.kelly_fraction"] = {"type": "float", "low": 0.1, "high": 2.0}
    msg = _error(raw)
    assert "search_space.decision.kelly_fraction" in msg and "2.0" in msg


def test_integer_parameter_needs_int_distribution(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["decision.cooldown_losses"] = {"type": "float", "low": 0, "high": 4}
    assert "use type: int" in _error(raw)


def test_unknown_objective(bars_root: Path, tmp_path: Path) -> None:
    msg = _error(make_study(bars_root, tmp_path, objective="sharpe_only"))
    assert "objective" in msg and "sharpe_only" in msg


def test_missing_data_names_the_symbol(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["data"]["symbols"] = ["AAA", "ZZZ"]
    msg = _error(raw)
    assert "data.symbols" in msg and "ZZZ" in msg


def test_unknown_top_level_key(bars_root: Path, tmp_path: Path) -> None:
    assert "trails" in _error(make_study(bars_root, tmp_path, trails=3))


def test_sweep_must_be_decision_and_not_searched(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path, sweep={"model.svm_c": [1.0, 2.0]})
    assert "only decision.* thresholds" in _error(raw)
    raw = make_study(bars_root, tmp_path, sweep={"decision.kelly_fraction": [0.1, 0.2]})
    assert "pick one" in _error(raw)


def test_list_parameter_needs_categorical_lists(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    raw["search_space"]["features.windows"] = {"type": "int", "low": 2, "high": 5}
    assert "categorical" in _error(raw)
    raw["search_space"]["features.windows"] = {"type": "categorical", "choices": [[1], [5, 10]]}
    assert "features.windows" in _error(raw)


def test_load_study_file_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study file"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(StudyError, match="not valid YAML"):
        load_study(bad)
    bad.write_text("- a list")
    with pytest.raises(StudyError, match="mapping"):
        load_study(bad)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_committed_study_files_are_valid(path: Path) -> None:
    study = load_study(path, check_data=False)
    assert study.trials >= 1 and study.search_space
    raw = yaml.safe_load(path.read_text())
    assert raw["name"] == study.name
