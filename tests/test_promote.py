"""The promotion gate end to end (tiny real data and models, controlled predictions) and the registry."""

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aim.cli import app
from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.errors import ModelError
from aim.pipeline.models import evaluation_dir
from aim.pipeline.promote import promotion_path, run_promote
from aim.registry import ModelRegistry
from aim.training.checkpoint import build_model, save_checkpoint
from tests.conftest import write_params

SMALL = {
    "model": {"dim": 4, "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 1024, "patience": 1},
    "promote": {"challenger": "lr", "control": "deepfm"},
}


def _run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A prepared planted data set with two trained models: lr (challenger) and deepfm (control)."""
    folder = tmp_path_factory.mktemp("promote")
    params = write_params(folder, {"source": "planted", "planted": {"rows": 5000, "values": 10}}, seed=3, **SMALL)
    for args in (("prepare",), ("train", "--model", "lr"), ("train", "--model", "deepfm")):
        result = _run(*args, "-p", str(params))
        assert result.exit_code == 0, result.output
    return params


def _params(project, tmp_path, *overrides):
    """Params with this test's own registry and metrics folder."""
    return load_params(
        project, [f"promote.registry={tmp_path / 'registry'}", f"metrics={tmp_path / 'metrics'}", *overrides]
    )


def _labels(params) -> np.ndarray:
    return np.asarray(PreparedData(params.training_dir()).split("test").labels)


def _write_predictions(params, **scores) -> None:
    folder = evaluation_dir(params) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in scores.items():
        np.save(folder / f"{name}.npy", np.asarray(values, dtype=np.float32))


def _scores(labels: np.ndarray, signal: float, seed: int) -> np.ndarray:
    """Click probabilities mixing the true label (weight ``signal``) with uniform noise."""
    return signal * labels + (1 - signal) * np.random.default_rng(seed).random(len(labels))


def test_gate_refuses_worse_and_tied_challengers_and_promotes_a_better_one(project, tmp_path):
    params = _params(project, tmp_path)
    labels = _labels(params)
    registry = ModelRegistry(tmp_path / "registry")
    pointer = tmp_path / "registry" / "production.json"
    control = _scores(labels, 0.3, seed=1)

    # worse: an empty registry first gets the control as production; the challenger is kept, not served
    _write_predictions(params, deepfm=control, lr=np.random.default_rng(2).random(len(labels)))
    worse = run_promote(params)
    assert worse["decision"] == "rejected" and worse["delta_auc"] < 0 and worse["p_value"] > 0.5
    assert worse["production_before"] is None and worse["control_installed"]
    assert worse["control"]["name"] == "deepfm" and worse["control"]["version"] == "v0001"
    assert worse["challenger"]["version"] == "v0002" and worse["production_after"] == "v0001"
    assert registry.production() == "v0001" and registry.info("v0001")["name"] == "deepfm"
    assert "not shown to beat" in worse["reason"] and worse["summary"].startswith("rejected lr v0002")
    written = json.loads(promotion_path(params).read_text())
    assert written == {k: v for k, v in worse.items() if k != "summary"}
    assert written["data_version"] == PreparedData(params.training_dir()).meta["data_version"]
    before = pointer.read_bytes()

    # tied: identical predictions are no gain at all; production stays byte for byte
    _write_predictions(params, deepfm=control, lr=control)
    tied = run_promote(params)
    assert tied["decision"] == "rejected" and tied["delta_auc"] == 0.0 and tied["p_value"] == 1.0
    assert tied["control"]["version"] == "v0001"  # same checkpoint, data and metrics: reused
    assert tied["challenger"]["version"] == "v0003" and not tied["control_installed"]
    assert tied["production_before"] == tied["production_after"] == "v0001"
    assert pointer.read_bytes() == before and len(registry.history()) == 1

    # better: production switches to the challenger
    _write_predictions(params, deepfm=control, lr=_scores(labels, 0.6, seed=3))
    better = run_promote(params)
    assert better["decision"] == "promoted" and better["delta_auc"] > 0.05 and better["p_value"] < 1e-3
    assert better["ci"][0] > 0 and better["test"] == "delong"
    assert better["production_before"] == "v0001" and better["production_after"] == "v0004"
    assert pointer.read_bytes() != before and registry.production() == "v0004"
    assert registry.history()[-1]["from"] == "v0001" and registry.history()[-1]["to"] == "v0004"
    assert better["summary"].startswith("promoted lr v0004 to production")
    assert registry.versions() == ["v0001", "v0002", "v0003", "v0004"]
    model, config = registry.load("production")
    assert config["model"] == "lr" and isinstance(model, torch.nn.Module)
    metrics = registry.info("v0004")["metrics"]
    assert metrics["test_auc"] == pytest.approx(better["challenger"]["test_auc"]) and metrics["test_rows"] == len(
        labels
    )


def test_bootstrap_gate_and_min_delta(project, tmp_path):
    params = _params(project, tmp_path, "promote.test=bootstrap", "promote.bootstrap_samples=200")
    labels = _labels(params)
    _write_predictions(params, deepfm=_scores(labels, 0.3, seed=4), lr=_scores(labels, 0.6, seed=5))
    won = run_promote(params)
    assert won["decision"] == "promoted" and won["test"] == "bootstrap" and won["ci"][0] > 0
    demanding = _params(project, tmp_path, "promote.test=bootstrap", "promote.min_delta=0.5")
    lost = run_promote(demanding)
    assert lost["decision"] == "rejected" and "not above min_delta 0.5" in lost["reason"]
    assert lost["production_after"] == lost["production_before"] == won["production_after"]


def test_cli_prints_one_line_and_clear_errors(project, tmp_path):
    params = _params(project, tmp_path)
    labels = _labels(params)
    common = ["-p", str(project), "-S", f"promote.registry={tmp_path / 'registry'}", "-S", f"metrics={tmp_path / 'm'}"]
    _write_predictions(params, deepfm=_scores(labels, 0.3, seed=6), lr=_scores(labels, 0.6, seed=7))
    result = _run("promote", *common)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("promoted lr v0002") and result.stdout.count("\n") == 1  # logs go to stderr

    result = _run("promote", *common, "-S", "promote.challenger=fm")
    assert result.exit_code == 2 and "no test predictions for 'fm'" in result.output and "aim evaluate" in result.output

    _write_predictions(params, fm=_scores(labels, 0.6, seed=8))
    result = _run("promote", *common, "-S", "promote.challenger=fm")
    assert result.exit_code == 2 and "train 'fm'" in result.output

    _write_predictions(params, lr=_scores(labels, 0.6, seed=7)[:-5])
    result = _run("promote", *common)
    assert result.exit_code == 2 and f"have {len(labels) - 5:,} rows" in result.output

    result = _run("promote", *common, "-S", "promote.challenger=deepfm")
    assert result.exit_code == 2 and "two different models" in result.output
    assert ModelRegistry(tmp_path / "registry").production() == "v0002"  # failed runs changed nothing


# -- the registry on its own ---------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny saved LR checkpoint (model.pt + config.json + train.json)."""
    config = {"model": "lr", "kwargs": {"vocab_sizes": [5, 7], "n_multi_hot": 0}, "fields": [["a", 5], ["b", 7]]}
    torch.manual_seed(0)
    model = build_model(config)
    folder = tmp_path / "models" / "lr"
    save_checkpoint(model, config, folder)
    (folder / "train.json").write_text('{"best_epoch": 1}')
    return folder, model


def test_registry_versions_info_and_load(tmp_path, checkpoint):
    folder, model = checkpoint
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.versions() == [] and registry.production() is None
    first = registry.register(folder, name="lr", metrics={"test_auc": 0.7}, data_version="abc")
    second = registry.register(folder, name="lr", metrics={"test_auc": 0.71}, data_version="abc")
    assert (first, second) == ("v0001", "v0002") and registry.versions() == ["v0001", "v0002"]
    info = json.loads((tmp_path / "registry" / "v0002" / "info.json").read_text())
    assert info["name"] == "lr" and info["version"] == "v0002" and info["metrics"] == {"test_auc": 0.71}
    assert info["data_version"] == "abc" and info["git_commit"] is None  # tmp_path is no git repository
    assert info["sha256"] == hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    assert datetime.fromisoformat(info["created_at"]).utcoffset() == timedelta(0)
    assert {p.name for p in (tmp_path / "registry" / "v0002").iterdir()} == {
        "model.pt",
        "config.json",
        "train.json",
        "info.json",
    }
    with pytest.raises(ModelError, match="no production model"):
        registry.load("production")
    with pytest.raises(ModelError, match="'v0009' is not in"):
        registry.promote("v0009", "no such version")
    registry.promote(second, "test")
    loaded, config = registry.load("production")
    assert registry.production() == "v0002" and config["model"] == "lr"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_git_commit_is_recorded_inside_a_repository(tmp_path, checkpoint):
    folder, _ = checkpoint
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "README").write_text("x")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    registry = ModelRegistry(tmp_path / "registry")
    version = registry.register(folder, name="lr", metrics={}, data_version=None)
    assert len(head) == 40 and registry.info(version)["git_commit"] == head


def test_production_pointer_switch_is_atomic(tmp_path, checkpoint, monkeypatch):
    folder, _ = checkpoint
    registry = ModelRegistry(tmp_path / "registry")
    pointer = tmp_path / "registry" / "production.json"
    a, b = (registry.register(folder, name="lr", metrics={}, data_version=None) for _ in range(2))
    registry.promote(a, "first")
    before = pointer.read_bytes()

    def crash(*_):
        raise OSError("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr("aim.registry.os.replace", crash)
        with pytest.raises(OSError):
            registry.promote(b, "crashes mid-switch")
    assert pointer.read_bytes() == before and registry.production() == a
    assert [h["to"] for h in registry.history()] == [a]  # no history line for a switch that did not happen

    registry.promote(b, "second")
    assert registry.production() == b and not (tmp_path / "registry" / "production.json.tmp").exists()
    assert json.loads(pointer.read_text())["reason"] == "second"
    assert [(h["from"], h["to"]) for h in registry.history()] == [(None, a), (a, b)]


def test_corrupt_or_incomplete_versions_are_detected(tmp_path, checkpoint):
    folder, _ = checkpoint
    registry = ModelRegistry(tmp_path / "registry")
    version = registry.register(folder, name="lr", metrics={}, data_version=None)
    weights = tmp_path / "registry" / version / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"v0001/model\.pt is corrupt: sha256"):
        registry.load(version)
    (tmp_path / "registry" / "v0002").mkdir()  # an interrupted registration: no info.json
    assert registry.versions() == ["v0001"]
    assert registry.register(folder, name="lr", metrics={}, data_version=None) == "v0003"


def test_concurrent_registrations_get_distinct_versions(tmp_path, checkpoint):
    folder, _ = checkpoint
    registry = ModelRegistry(tmp_path / "registry")
    with ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(lambda i: registry.register(folder, name=f"m{i}", metrics={}, data_version=None), range(8))
        )
    assert sorted(versions) == [f"v{i:04d}" for i in range(1, 9)]
    assert sorted(registry.info(v)["name"] for v in versions) == sorted(f"m{i}" for i in range(8))
