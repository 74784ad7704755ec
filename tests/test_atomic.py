"""A prepare killed mid-write leaves the previous dataset intact; a rerun completes and cleans up."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from aim.config import SyntheticCriteoConfig
from aim.data.arrays import PreparedData
from aim.data.synthetic import ensure_criteo_like
from aim.pipeline.prepare import run_prepare


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the prepare run to start writing")


def test_kill_mid_write_then_rerun(tmp_path, make_params):
    frame = pd.DataFrame({"click": np.arange(300) % 2, "user": [f"u{i % 9}" for i in range(300)]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["user"]}
    params = make_params({"source": "table", "table": table})
    run_prepare(params)
    out = params.path("data/prepared")
    before = PreparedData(out).meta["data_version"]
    before_train = np.asarray(PreparedData(out).split("train").fields).copy()

    synthetic = {"rows": 300_000, "max_vocab": 20_000, "path": "raw/c.tsv"}
    ensure_criteo_like(tmp_path / "raw/c.tsv", SyntheticCriteoConfig(**synthetic), seed=7)
    overrides = ["data.source=synthetic_criteo", f"data.synthetic_criteo={synthetic}".replace("'", '"')]
    cmd = [sys.executable, "-m", "aim.cli", "prepare", "--params", str(tmp_path / "params.yaml")]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    building = _wait_for(lambda: next((p for p in out.parent.glob(".prepared.tmp-*") if (p / "arrays").exists()), None))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert building.exists()  # killed while writing

    # the published dataset is still the old, complete one
    data = PreparedData(out)
    assert data.meta["data_version"] == before
    assert np.array_equal(np.asarray(data.split("train").fields), before_train)
    assert (tmp_path / "data/warehouse.duckdb").exists()

    # a rerun completes, publishes the new dataset and removes the dead run's leftovers
    summary = run_prepare(make_params({"source": "table", "table": table}, overrides=overrides))
    assert summary["rows"]["total"] == 300_000
    assert PreparedData(out).meta["data_version"] != before
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_clean_stale_removes_dead_runs_files_with_suffixes(tmp_path):
    from aim.data.atomic import clean_stale

    target = tmp_path / "warehouse.duckdb"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    for name in (
        f".warehouse.duckdb.tmp-{dead}",
        f".warehouse.duckdb.tmp-{dead}.wal",
        f".warehouse.duckdb.tmp-{os.getpid()}",
    ):
        (tmp_path / name).write_text("x")
    (tmp_path / f".warehouse.duckdb.spill-{dead}").mkdir()
    clean_stale(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # this process's own leftovers go too
