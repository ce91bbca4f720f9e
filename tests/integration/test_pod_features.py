"""What a serving pod has: Redis with the features the cluster's feature job wrote, no
feature view in its own Feast registry, and augur installed from the wheel (no source tree). It still
reads the rows the job materialized."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from augur.config import Settings
from augur.data import load_sample, write_bars
from augur.features import store as fs
from tests.conftest import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 15  # a database of its own on the session's Redis


def test_a_pod_without_a_registry_reads_what_the_feature_job_wrote(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{redis_server.url},db={REDIS_DB}"
    job = Settings(
        home=tmp_path / "job", feature_repo=ROOT / "feature_repo", online_store="redis",
        redis_url=url,
    )  # fmt: skip
    write_bars(load_sample(["EURUSD"])["EURUSD"].tail(200), job.bars_dir)
    fs.build_offline_features(job)
    fs.apply(job)
    fs.materialize(job)
    expected = fs.OnlineFeatures(job).get(["EURUSD"])["EURUSD"]

    # The pod: an empty home, and the default feature repo ("feature_repo"), which its
    # working directory lacks, so augur's packaged copy is used.
    pod_home = tmp_path / "pod"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fs, "PACKAGED_REPO", ROOT / "feature_repo")
    pod = Settings(home=pod_home, online_store="redis", redis_url=url)
    got = fs.OnlineFeatures(pod).get(["EURUSD"])["EURUSD"]
    with pytest.raises(fs.FeatureStoreError, match="not registered"):
        fs._feature_view(fs.feature_store(pod))  # nothing was applied in the pod's home
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]


def test_the_wheel_carries_the_feast_definitions(tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    build = [str(uv), "build", "--wheel"] if uv.exists() else [sys.executable, "-m", "build"]
    subprocess.run(
        [*build, "--out-dir", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True, env={**os.environ, "UV_OFFLINE": "1"},
    )  # fmt: skip
    (wheel,) = tmp_path.glob("augur-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "augur/_feature_repo/definitions.py" in names
    assert "augur/_feature_repo/feature_store.yaml" in names
    assert fs.PACKAGED_REPO.name == "_feature_repo" and fs.PACKAGED_REPO.parent.name == "augur"
