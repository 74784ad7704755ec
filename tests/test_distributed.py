"""torchrun with 2 gloo processes on CPU gives the single-process search: same kept interactions,
validation AUC within 0.002, rank-consistent parameters, and artefacts written by rank 0 only."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aim.config import load_params
from aim.pipeline.prepare import run_prepare
from tests.conftest import write_params

SEARCH = {
    "variant": "aim",
    "max_order": 2,
    "epochs": 3,
    "batch_size": 512,
    "lr": 0.003,
    "interaction_grda": {"lr": 0.1, "c": 0.4, "mu": 0.8},  # decisive gates: none left near zero
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    path = write_params(
        folder,
        {"source": "planted", "planted": {"rows": 40_000}},
        seed=3,
        search=SEARCH,
        model={"dim": 8, "hidden": [16]},
    )
    run_prepare(load_params(path))
    return folder


def _run(folder: Path, name: str, processes: int) -> dict:
    """search-interaction in its own artifacts/metrics folders, on 1 process or under torchrun."""
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params.update(artifacts=f"artifacts-{name}", metrics=f"metrics-{name}")
    path = folder / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    stage = ["-m", "aim.cli", "search-interaction", "--params", str(path)]
    if processes == 1:
        command = [sys.executable, *stage]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        command = [torchrun, "--standalone", f"--nproc_per_node={processes}", *stage]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    arch = json.loads((folder / f"artifacts-{name}" / "search" / "interaction.json").read_text())
    metrics = json.loads((folder / f"metrics-{name}" / "search_interaction.json").read_text())
    return {"arch": arch, "metrics": metrics, "stdout": done.stdout, "stderr": done.stderr}


def _kept(arch: dict) -> dict:
    """Kept interaction (its fields) -> total |α| over its kept functions."""
    return {tuple(i["fields"]): sum(abs(a) for a in i["functions"].values()) for i in arch["interactions"]}


def test_two_gloo_processes_match_the_single_process_search(project):
    single = _run(project, "single", 1)
    ddp = _run(project, "ddp", 2)
    kept_single, kept_ddp = _kept(single["arch"]), _kept(ddp["arch"])
    assert set(kept_ddp) == set(kept_single) == {("f0", "f1"), ("f2", "f5"), ("f3", "f4")}  # the planted pairs
    for fields, strength in kept_single.items():
        assert abs(kept_ddp[fields] - strength) < 0.03
    auc_single = single["metrics"]["orders"][-1]["history"][-1]["auc"]
    auc_ddp = ddp["metrics"]["orders"][-1]["history"][-1]["auc"]
    assert auc_single > 0.7
    assert abs(auc_ddp - auc_single) <= 0.002
    assert "rank 1 of 2 joined (gloo)" in ddp["stderr"]
    assert ddp["stdout"].count("kept interactions per order") == 1  # only rank 0 reports
