"""Time split order, random split sizes, and determinism of the whole prepared output."""

import hashlib

import numpy as np
import pandas as pd

from aim.data.arrays import PreparedData
from aim.pipeline.prepare import run_prepare


def _write_events(tmp_path, n=500, with_time=True, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"click": rng.integers(0, 2, n), "user": [f"u{v}" for v in rng.integers(0, 40, n)]})
    if with_time:
        frame["ts"] = rng.integers(1_600_000_000, 1_600_100_000, n)  # unordered, with ties
        frame.loc[::7, "ts"] = 1_600_050_000
    frame.to_csv(tmp_path / "e.csv", index=False)
    table = {"path": "e.csv", "label": {"column": "click"}, "categorical": ["user"]}
    if with_time:
        table["timestamp"] = {"column": "ts"}
    return table


def test_time_split_has_no_test_row_earlier_than_a_train_row(tmp_path, make_params):
    params = make_params({"source": "table", "table": _write_events(tmp_path)})
    summary = run_prepare(params)
    assert summary["split_method"] == "time"
    assert summary["rows"] == {"total": 500, "train": 400, "valid": 50, "test": 50}
    data = PreparedData(params.path("data/prepared"))
    train, valid, test = (data.split(s).timestamps for s in ("train", "valid", "test"))
    assert train.max() <= valid.min() and valid.max() <= test.min()
    assert (np.diff(train) >= 0).all()  # arrays are in time order inside a split


def test_random_split_sizes_and_seed(tmp_path, make_params):
    table = _write_events(tmp_path, n=1000, with_time=False)
    params = make_params({"source": "table", "table": table}, seed=1)
    summary = run_prepare(params)
    assert summary["split_method"] == "random"
    assert summary["rows"] == {"total": 1000, "train": 800, "valid": 100, "test": 100}
    first = np.asarray(PreparedData(params.path("data/prepared")).split("test").fields).copy()
    run_prepare(make_params({"source": "table", "table": table}, seed=2))
    second = np.asarray(PreparedData(params.path("data/prepared")).split("test").fields)
    assert not np.array_equal(first, second)  # another seed, another split


def _digest(folder):
    digest = hashlib.sha256()
    for path in sorted((folder / "arrays").rglob("*.npy")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_input_gives_identical_arrays(tmp_path, make_params):
    params = make_params({"source": "table", "table": _write_events(tmp_path), "threads": 2, "batch_rows": 1024})
    run_prepare(params)
    first = _digest(params.path("data/prepared"))
    run_prepare(params)
    assert _digest(params.path("data/prepared")) == first
