"""The model stages through the CLI, as DVC runs them: search-interaction -> search-embed -> retrain,
base and transfer models, evaluate; and the clear errors when an artefact is missing or broken."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from aim.cli import app
from aim.search.architecture import Architecture
from tests.conftest import write_params

SMALL = {
    "model": {"dim": 8, "hidden": [16]},
    "train": {"epochs": 2, "batch_size": 1024, "patience": 1},
    "search": {"max_order": 3, "epochs": 2, "batch_size": 512, "lr": 0.003},
}


def _run(*args):
    result = CliRunner().invoke(app, list(args))
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stages")
    params = write_params(folder, {"source": "planted", "planted": {"rows": 20_000, "values": 10}}, seed=1, **SMALL)
    assert _run("prepare", "-p", str(params)).exit_code == 0
    return folder, str(params)


def test_three_stages_hand_over_artefacts_and_evaluate_scores_every_model(project):
    folder, params = project
    for stage in ("search-interaction", "search-embed", "retrain"):
        result = _run(stage, "-p", params)
        assert result.exit_code == 0, result.output
    arch = Architecture.load(folder / "artifacts" / "architecture.json")
    assert (
        arch.function_wise and arch.interactions and all(f.startswith("f") for i in arch.interactions for f in i.fields)
    )
    assert set(arch.widths) == {f"f{i}" for i in range(6)} and max(arch.widths.values()) <= 8
    for png in ("alpha_heatmap.png", "embedding_widths.png", "search/alpha_heatmap.png", "models/aim/auc.png"):
        with Image.open(folder / "artifacts" / png) as image:
            assert image.format == "PNG"
    for model in ("deepfm", "deepfm_transfer", "ipnn_transfer", "fm"):
        result = _run("train", "--model", model, "-p", params)
        assert result.exit_code == 0, result.output
    result = _run("evaluate", "-p", params)
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "metrics" / "evaluate.json").read_text())
    assert set(report) == {"aim", "deepfm", "deepfm_transfer", "ipnn_transfer", "fm"}
    for row in report.values():
        assert 0.5 < row["test_auc"] <= 1 and row["test_logloss"] > 0 and row["parameters"] > 0
        assert row["train_seconds"] > 0 and row["inference_rows_per_s"] > 0
    retrain = json.loads((folder / "metrics" / "retrain.json").read_text())
    assert retrain["search_seconds"] > 0 and retrain["train_seconds"] > retrain["search_seconds"]
    transfer_rows = sum(len(i.functions) for i in arch.interactions)
    assert report["ipnn_transfer"]["parameters"] != report["deepfm_transfer"]["parameters"] or transfer_rows == 0


def test_missing_or_broken_artefacts_give_one_line_errors(project, tmp_path):
    folder, params = project
    other = write_params(tmp_path, {"source": "planted", "output_dir": str(folder / "data/prepared")}, **SMALL)
    result = _run("retrain", "-p", str(other))
    assert result.exit_code == 2 and "architecture.json not found" in result.output
    result = _run("train", "--model", "xgboost", "-p", params)
    assert result.exit_code == 2 and "unknown model 'xgboost'" in result.output
    _run("train", "--model", "lr", "-p", params)
    (folder / "artifacts" / "models" / "lr" / "model.pt").write_bytes(b"not a checkpoint")
    result = _run("evaluate", "-p", params, "-S", "evaluate.models=[lr]")
    assert result.exit_code == 2 and "not a readable checkpoint" in result.output


def test_every_stage_command_has_help():
    for command in ("search-interaction", "search-embed", "retrain", "train", "evaluate"):
        result = _run(command, "--help")
        assert result.exit_code == 0 and "--params" in result.output
