"""``dvc repro`` of the real dvc.yaml on a small click log in a scratch git repository: every
stage runs through the ``aim`` CLI, a second repro does nothing, a changed parameter re-runs
only the stages that read it, metrics and plots render, and the configured local remote takes
a ``dvc push``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EVENTS_TABLE, write_events_csv

ROOT = Path(__file__).resolve().parent.parent
SMALL = {
    "model": {"dim": 4, "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 512, "patience": 0},
    "search": {"max_order": 2, "epochs": 1, "batch_size": 512},
    "features": {"enabled": True},
    "replay": {"windows": 2, "max_requests": 80},
    "monitor": {"bootstrap_samples": 200},
}


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1", GX_ANALYTICS_ENABLED="false")
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("dvc-repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("aim", "features"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    for file in ("dvc.yaml", "requirements.lock"):
        shutil.copy2(ROOT / file, repo / file)
    write_events_csv(repo / "events.csv", rows=2500, seed=11)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # the project's, on a small table
    params.update(seed=3, device="cpu")
    params["data"].update(source="table", table=EVENTS_TABLE, min_count=1)
    for section, values in SMALL.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    _run(repo, "git", "init", "-q")
    _run(repo, "dvc", "init", "-q")
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # the project's local remote
    first = _run(repo, "dvc", "repro")
    return repo, first.stdout


def _status(repo: Path) -> dict:
    return json.loads(_run(repo, "dvc", "status", "--json").stdout or "{}")


def test_repro_runs_every_stage_and_a_second_repro_does_nothing(repo):
    repo, first = repo
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        assert f"Running stage '{stage}'" in first, stage
    for path in ("metrics/evaluate.json", "metrics/promotion.json", "artifacts/architecture.json"):
        assert (repo / path).exists(), path
    assert _status(repo) == {}
    again = _run(repo, "dvc", "repro").stdout
    assert "Running stage" not in again


def test_a_changed_parameter_reruns_only_the_stages_that_read_it(repo):
    repo, _ = repo
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params.setdefault("promote", {})["alpha"] = 0.01
    params_path.write_text(yaml.safe_dump(params))
    assert set(_status(repo)) == {"promote"}
    out = _run(repo, "dvc", "repro").stdout
    ran = set(re.findall(r"Running stage '([\w-]+)'", out))
    assert ran == {"promote", "replay", "monitor"}  # the gate, and what reads its decision; nothing upstream
    params["train"]["lr"] = 0.002  # read by the control and the retrain stage, not by the search
    params_path.write_text(yaml.safe_dump(params))
    assert set(_status(repo)) == {"train-control", "retrain"}


def test_metrics_plots_and_push_work(repo):
    repo, _ = repo
    metrics = json.loads(_run(repo, "dvc", "metrics", "show", "--json").stdout)
    flat = json.dumps(metrics)
    assert "test_auc" in flat and "deepfm" in flat and "decision" in flat
    _run(repo, "dvc", "plots", "show", "-o", "plots_html")
    html = (repo / "plots_html" / "index.html").read_text()
    assert "roc" in html.lower() and "valid_auc" in html
    _run(repo, "dvc", "push", "-q")
    remote = repo / ".dvc-storage"
    assert remote.is_dir() and any(p.is_file() for p in remote.rglob("*"))
