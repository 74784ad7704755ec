"""The training loop on the planted data set: it learns, it is seeded, it restores the best epoch;
checkpoints round-trip and bad files are refused with a clear error."""

import json

import numpy as np
import pytest
import torch

from aim.data.arrays import PreparedData
from aim.errors import ModelError
from aim.models import FM
from aim.pipeline.prepare import run_prepare
from aim.training.batches import resolve_device
from aim.training.checkpoint import load_checkpoint, save_checkpoint
from aim.training.loop import TrainSettings, train
from aim.training.metrics import evaluate, predict

CPU = resolve_device("cpu")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from aim.config import load_params
    from tests.conftest import write_params

    folder = tmp_path_factory.mktemp("planted")
    params = load_params(write_params(folder, {"source": "planted", "planted": {"rows": 12000, "values": 10}}))
    run_prepare(params)
    return PreparedData(params.path("data/prepared"))


def _fm(data):
    return FM([f["vocab_size"] for f in data.fields], dim=8)


def test_fm_learns_and_is_deterministic(planted):
    settings = TrainSettings(epochs=3, batch_size=512, lr=0.01, seed=3)
    torch.manual_seed(3)
    first_model = _fm(planted)
    first = train(first_model, planted, settings, CPU)
    torch.manual_seed(3)
    second = train(_fm(planted), planted, settings, CPU)
    assert first.best_auc > 0.7  # planted pairs are learnable by FM
    assert [h["auc"] for h in first.history] == [h["auc"] for h in second.history]
    # the best epoch's weights are the ones kept
    assert evaluate(first_model, planted.split("valid"), CPU)["auc"] == pytest.approx(first.best_auc)


def test_early_stopping_stops_when_validation_stalls(planted):
    settings = TrainSettings(epochs=8, batch_size=512, lr=0.5, patience=0, seed=1)  # far too high a rate
    result = train(_fm(planted), planted, settings, CPU)
    assert len(result.history) < 8
    assert result.best_epoch == int(np.argmax([h["auc"] for h in result.history])) + 1


def test_checkpoint_round_trip_and_refusals(planted, tmp_path):
    model = _fm(planted)
    kwargs = {"vocab_sizes": [f["vocab_size"] for f in planted.fields], "dim": 8}
    save_checkpoint(model, {"model": "fm", "kwargs": kwargs}, tmp_path / "ckpt")
    loaded, config = load_checkpoint(tmp_path / "ckpt")
    test = planted.split("test")
    np.testing.assert_array_equal(predict(model, test, CPU), predict(loaded, test, CPU))
    assert config["model"] == "fm"

    bad = json.loads((tmp_path / "ckpt/config.json").read_text())
    bad["kwargs"]["dim"] = 4
    (tmp_path / "ckpt/config.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="does not match"):
        load_checkpoint(tmp_path / "ckpt")

    (tmp_path / "ckpt/model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ModelError, match="missing"):
        load_checkpoint(tmp_path / "nowhere")
