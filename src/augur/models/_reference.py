"""The training reference a model version carries for drift monitoring: a bounded random
sample of its training features, saved in the version's directory when it is saved, and
read back by the service to compare what it serves against (:mod:`augur.monitoring.drift`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE_FILENAME = "drift_reference.parquet"
"""File name of the training reference inside a model's directory."""


def _make_readable(path: str) -> None:
    # mkstemp creates 0600; a report or model file is meant to be read by others too.
    os.chmod(path, 0o644)


def reference_sample(
    X: pd.DataFrame | np.ndarray,
    max_rows: int = 5_000,
    seed: int = 7,
    feature_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A bounded uniform random sample (without replacement) of training features.

    ``X`` is the training feature matrix (a DataFrame of numeric feature columns, or an
    array with ``feature_names``). Rows with a missing value are dropped first. The
    result is a float64 DataFrame with at most ``max_rows`` rows, the columns in the
    model's feature order — save it with :func:`save_reference`.
    """
    if isinstance(X, pd.DataFrame):
        frame = X if feature_names is None else X.loc[:, list(feature_names)]
        non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ValueError(
                f"reference_sample: columns {non_numeric} are not numeric; pass only the "
                "model's feature columns (drop timestamp/symbol/label)"
            )
        frame = frame.astype("float64")
    else:
        arr = np.asarray(X, dtype="float64")
        if arr.ndim != 2:
            raise ValueError(f"reference_sample: X must be 2-D, got shape {arr.shape}")
        names = (
            list(feature_names)
            if feature_names is not None
            else [f"f{i}" for i in range(arr.shape[1])]
        )
        if len(names) != arr.shape[1]:
            raise ValueError(
                f"reference_sample: {len(names)} feature_names for {arr.shape[1]} columns"
            )
        frame = pd.DataFrame(arr, columns=names)
    if max_rows < 1:
        raise ValueError("reference_sample: max_rows must be >= 1")
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna()
    if frame.empty:
        raise ValueError("reference_sample: no complete (non-NaN) rows to sample from")
    if len(frame) > max_rows:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame = frame.iloc[idx]
    return frame.reset_index(drop=True)


def save_reference(sample: pd.DataFrame, directory: str | Path) -> Path:
    """Write the reference sample as ``<directory>/drift_reference.parquet`` (atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / REFERENCE_FILENAME
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".drift_reference.", suffix=".tmp")
    os.close(fd)
    try:
        sample.to_parquet(tmp, index=False)
        _make_readable(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_reference(directory: str | Path) -> pd.DataFrame | None:
    """The reference saved in a model directory, or None when the model has none."""
    path = Path(directory) / REFERENCE_FILENAME
    if not path.exists():
        return None
    return pd.read_parquet(path).astype("float64")


__all__ = ["REFERENCE_FILENAME", "load_reference", "reference_sample", "save_reference"]
