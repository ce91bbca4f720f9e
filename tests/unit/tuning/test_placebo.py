"""No placebo parameters: a parameter the trainable ignores must fail the check — and
every committed study file must pass it (on real EURUSD sample bars)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from augur.tuning import check_no_placebo, load_study_bars, parse_study
from augur.tuning._placebo import PlaceboParameterError, probe_values
from augur.tuning._study import FloatDist, IntDist
from tests.unit.tuning.helpers import make_study

STUDIES = sorted(Path(__file__).resolve().parents[3].joinpath("tuning", "studies").glob("*.yaml"))


def test_probe_values_cover_the_range() -> None:
    assert probe_values(IntDist(type="int", low=0, high=5)) == [0, 1, 2, 3, 4, 5]
    wide = probe_values(IntDist(type="int", low=10, high=100, log=True), points=3)
    assert wide == [10, 32, 100]
    assert probe_values(FloatDist(type="float", low=0.0, high=1.0), points=3) == [0.0, 0.5, 1.0]


def test_ignored_parameter_is_reported(bars_root: Path, tmp_path: Path) -> None:
    raw = make_study(bars_root, tmp_path)
    # the single-symbol decision backtest never looks at cross-symbol correlation
    raw["search_space"]["decision.correlation_threshold"] = {
        "type": "float",
        "low": 0.1,
        "high": 0.9,
    }
    study = parse_study(raw)
    with pytest.raises(PlaceboParameterError, match=r"decision\.correlation_threshold") as info:
        check_no_placebo(study, load_study_bars(study), points=3)
    assert "confidence_threshold" not in str(info.value).split("never change")[0]


@pytest.fixture(scope="module")
def eurusd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from augur.data import load_sample, write_bars

    root = tmp_path_factory.mktemp("eurusd")
    bars = load_sample(["EURUSD"])["EURUSD"]
    write_bars(bars.tail(1500), root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_committed_study_has_no_placebo_parameter(
    path: Path, eurusd_root: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load(path.read_text())
    # the study's own search space on the last 1,500 real bars, two folds (fast)
    raw["data"].update({"root": str(eurusd_root), "n_folds": 2, "last_bars": None})
    raw["storage"] = str(tmp_path)
    study = parse_study(raw)
    probes = check_no_placebo(study, load_study_bars(study), points=3)
    assert set(probes) == set(study.search_space)
