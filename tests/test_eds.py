"""EDS and retrain: narrow tables really store only the kept slots, search_embed closes the
dimensions of fields with no signal, and the retrained model rebuilds from its checkpoint."""

import pytest
import torch

from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.models.gated import GatedInteractions
from aim.nn.embedding import NarrowEmbedding
from aim.nn.interactions import INNER
from aim.pipeline.prepare import run_prepare
from aim.search.architecture import Architecture
from aim.search.stages import EmbedSearchSettings, GRDASettings, RetrainSettings, retrain, search_embed
from aim.training.checkpoint import load_checkpoint, save_checkpoint
from aim.training.loop import TrainSettings
from aim.training.metrics import evaluate
from tests.conftest import write_params

CPU = torch.device("cpu")


def test_narrow_embedding_stores_only_kept_slots_and_zeroes_the_rest():
    torch.manual_seed(0)
    vocab = [5, 7, 3, 4]  # the last field is multi-hot
    keep = torch.rand(4, 2, 6) > 0.5
    keep[2] = False  # a field that kept nothing
    emb = NarrowEmbedding(vocab, keep, n_multi_hot=1)
    assert emb.weight.numel() == sum(v * int(k.sum()) for v, k in zip(vocab, keep, strict=True))
    ids = torch.tensor([[0, 6, 2], [4, 1, 0]])
    mh_ids, mask = torch.tensor([[1, 3, 0], [2, 0, 0]]), torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    out = emb(ids, [(mh_ids, mask)])
    assert out.shape == (2, 4, 2, 6)
    assert (out[:, ~keep.unsqueeze(0).expand(2, -1, -1, -1).all(0)] == 0).all()
    # field 1, value 6: its kept slots, in order, are the value's stretch of the flat table
    start = int(emb.base[1] + 6 * emb.stride[1])
    torch.testing.assert_close(out[0, 1][keep[1]], emb.weight[start : start + int(keep[1].sum())])
    mh_start = int(emb.base[3])
    per_value = int(keep[3].sum())
    value = lambda v: emb.weight[mh_start + v * per_value : mh_start + (v + 1) * per_value]  # noqa: E731
    torch.testing.assert_close(out[0, 3][keep[3]], (value(1) + value(3)) / 2)


def _arch(dim=8):
    fields = ["f0", "f1", "f2", "f3", "f4", "f5"]
    index = torch.tensor([[0, 1], [2, 5], [0, 1]])
    functions = torch.tensor([INNER, INNER, 3])
    return Architecture.from_gates(fields, index, functions, torch.tensor([0.9, 0.7, 0.4]), dim, function_wise=True)


def test_retrain_model_embedding_parameters_are_vocab_times_kept_width():
    arch = _arch().with_positions({"f0": [0, 2, 5], "f2": [1], "f3": []})
    vocab = [11, 12, 13, 14, 15, 16]
    model = GatedInteractions.from_architecture(arch, vocab, hidden=(8,), deep="stacked")
    tables = {"f0": 2, "f1": 2, "f2": 1, "f3": 1, "f4": 1, "f5": 1}  # inner (+ outer for the (f0, f1) pair)
    expected = sum(v * arch.widths[f] * tables[f] for v, f in zip(vocab, arch.fields, strict=True))
    assert model.embedding.weight.numel() == expected
    wide = GatedInteractions.from_architecture(arch, vocab, hidden=(8,), narrow=False)
    assert wide.embedding.weight.numel() == sum(vocab) * 4 * 8 > 3 * expected
    ids = torch.randint(0, 11, (32, 6))
    assert model(ids).shape == (32,)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eds")
    params = load_params(write_params(folder, {"source": "planted", "planted": {"rows": 30_000, "values": 10}}, seed=0))
    run_prepare(params)
    return PreparedData(params.path("data/prepared"))


def test_search_embed_closes_fields_without_interactions_then_retrain_ships(planted, tmp_path):
    arch = _arch()  # f3 and f4 are in no kept interaction: their β get no gradient
    settings = EmbedSearchSettings(grda=GRDASettings(c=0.3), train=TrainSettings(epochs=3, batch_size=512, seed=1))
    searched, result = search_embed(planted, arch, settings, CPU)
    assert result.best_auc > 0.6
    widths = searched.widths
    assert widths["f3"] == widths["f4"] == 0
    assert all(widths[f] > 0 for f in ("f0", "f1", "f2", "f5"))
    assert {tuple(i.fields) for i in searched.interactions} == {("f0", "f1"), ("f2", "f5")}

    model, fit, config = retrain(
        planted, searched, RetrainSettings(hidden=(16,), train=TrainSettings(epochs=3, seed=1)), CPU
    )
    vocab = [f["vocab_size"] for f in planted.fields]
    mask = searched.keep_mask(every_field=True)
    assert model.embedding.weight.numel() == sum(v * int(m.sum()) for v, m in zip(vocab, mask, strict=True))
    metrics = evaluate(model, planted.split("test"), CPU)
    assert metrics["auc"] > 0.6 and fit.best_epoch >= 1
    save_checkpoint(model, config, tmp_path / "aim")
    loaded, _ = load_checkpoint(tmp_path / "aim")
    assert evaluate(loaded, planted.split("test"), CPU)["auc"] == pytest.approx(metrics["auc"])
