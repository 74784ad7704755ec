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


def _numbers(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_narrow_embedding_stores_only_kept_slots_and_zeroes_the_rest():
    torch.manual_seed(0)
    vocab = [5, 7, 3, 4, 6]  # the last two fields are multi-hot
    keep = torch.rand(5, 2, 6) > 0.5
    keep[2] = False  # a field that kept nothing
    keep[0] = keep[1]  # fields 0 and 1 share a width group
    keep[4] = keep[3]  # and so do the multi-hot fields
    emb = NarrowEmbedding(vocab, keep, n_multi_hot=2)
    assert _numbers(emb) == sum(v * int(k.sum()) for v, k in zip(vocab, keep, strict=True))
    widths = {int(k.sum()) for k in keep} - {0}
    assert len(emb.groups) == len(widths)  # one table (one gather) per distinct width
    ids = torch.tensor([[0, 6, 2], [4, 1, 0]])
    mh = [
        (torch.tensor([[1, 3, 0], [2, 0, 0]]), torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)),
        (torch.tensor([[5, 0], [0, 0]]), torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)),
    ]
    out = emb(ids, mh)
    assert out.shape == (2, 5, 2, 6)
    assert (out[:, ~keep.unsqueeze(0).expand(2, -1, -1, -1).all(0)] == 0).all()

    def table_row(field: int, value: int) -> torch.Tensor:
        """A value's kept numbers, read from its width group's table."""
        for table, (single, multi) in zip(emb.groups, emb.members, strict=True):
            members = single + [emb.n_single + k for k in multi]
            if field in members:
                return table.weight[table.offsets[members.index(field)] + value]
        raise AssertionError(f"field {field} is in no group")

    torch.testing.assert_close(out[0, 1][keep[1]], table_row(1, 6))
    torch.testing.assert_close(out[1, 0][keep[0]], table_row(0, 4))
    torch.testing.assert_close(out[0, 3][keep[3]], (table_row(3, 1) + table_row(3, 3)) / 2)
    torch.testing.assert_close(out[0, 4][keep[4]], table_row(4, 5))
    torch.testing.assert_close(out[1, 4][keep[4]], torch.zeros(int(keep[4].sum())))  # empty list: zero
    # packed: the same kept numbers side by side, each column at its slot
    packed = emb.packed(ids, mh)
    assert packed.shape == (2, int(keep.sum()))
    torch.testing.assert_close(out.flatten(1)[:, emb.packed_slots], packed)
    assert sorted(emb.packed_slots.tolist()) == torch.nonzero(keep.flatten()).flatten().tolist()


def test_narrow_embedding_gradients_reach_only_the_rows_looked_up():
    torch.manual_seed(1)
    keep = torch.rand(3, 1, 4) > 0.3
    emb = NarrowEmbedding([4, 5, 6], keep)
    ids = torch.tensor([[1, 2, 3]])
    emb(ids).sum().backward()
    for table, (single, _) in zip(emb.groups, emb.members, strict=True):
        touched = (table.weight.grad != 0).any(1).nonzero().flatten()
        expected = sorted(int(table.offsets[j] + ids[0, f]) for j, f in enumerate(single))
        assert touched.tolist() == expected


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
    assert _numbers(model.embedding) == expected
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
    assert _numbers(model.embedding) == sum(v * int(m.sum()) for v, m in zip(vocab, mask, strict=True))
    metrics = evaluate(model, planted.split("test"), CPU)
    assert metrics["auc"] > 0.6 and fit.best_epoch >= 1
    save_checkpoint(model, config, tmp_path / "aim")
    loaded, _ = load_checkpoint(tmp_path / "aim")
    assert evaluate(loaded, planted.split("test"), CPU)["auc"] == pytest.approx(metrics["auc"])
