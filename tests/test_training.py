"""The training loop on the planted data set: it learns, it is seeded, it restores the best epoch;
checkpoints round-trip and bad files are refused with a clear error."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


def test_sparse_embeddings_use_lazy_adam_and_learn_like_dense(planted):
    """Large tables take sparse gradients and row-wise lazy Adam; the model learns as well as with dense Adam."""
    from aim.nn.embedding import FieldEmbedding
    from aim.training.optim import Optimizers

    settings = TrainSettings(epochs=3, batch_size=512, lr=0.01, seed=3)
    aucs = {}
    for sparse in (False, True):
        torch.manual_seed(3)
        model = _fm(planted)
        aucs[sparse] = train(model, planted, TrainSettings(**{**vars(settings), "sparse_embeddings": sparse}), CPU)
        tables = [m for m in model.modules() if isinstance(m, FieldEmbedding)]
        assert all(m.sparse == sparse for m in tables)
    optimizers = Optimizers(model, list(model.parameters()), 0.01, sparse=True)
    assert [type(o).__name__ for o in optimizers.all] == ["Adam", "RowAdam"]
    ids = torch.from_numpy(np.array(planted.split("train").fields[:64]))
    model(ids).sum().backward()
    assert model.embedding.weight.grad.is_sparse  # only the rows in the batch
    assert aucs[True].best_auc > 0.7
    assert abs(aucs[True].best_auc - aucs[False].best_auc) < 0.03


def test_sparse_embeddings_resolve_to_dense_when_compiled_or_distributed(planted):
    """auto: row-wise lazy Adam for large tables only, never under DDP or torch.compile (which has
    no sparse gradients); asking for both sparse and compile is a clear error."""
    from aim.training.optim import SPARSE_MIN_ROWS, use_sparse

    small, large = _fm(planted), FM([SPARSE_MIN_ROWS // 2, SPARSE_MIN_ROWS // 2], 2)
    assert not use_sparse(small, None) and use_sparse(large, None)
    assert not use_sparse(large, None, distributed=True) and not use_sparse(large, None, compiled=True)
    with pytest.raises(ValueError, match="sparse_embeddings: true cannot run with compute.compile"):
        use_sparse(large, True, compiled=True)


def test_row_adam_matches_sparse_adam_and_shares_one_unique():
    """RowAdam is lazy Adam: the same steps as torch's SparseAdam, with duplicate ids summed and
    two tables looked up with the same ids (DeepFM's embedding and first-order weights)."""
    from aim.training.optim import RowAdam

    torch.manual_seed(0)
    start = [torch.randn(40, 4), torch.randn(40, 1)]
    ours = [torch.nn.Parameter(w.clone()) for w in start]
    reference = [torch.nn.Parameter(w.clone()) for w in start]
    optimizers = [(ours, RowAdam(ours, lr=0.05)), (reference, torch.optim.SparseAdam(reference, lr=0.05))]
    for _ in range(25):
        ids = torch.randint(0, 40, (64,))  # duplicates in every batch, some rows never touched
        target = torch.randn(64, 4)
        for (table, first_order), optimizer in optimizers:
            optimizer.zero_grad()
            out = F.embedding(ids, table, sparse=True) + F.embedding(ids, first_order, sparse=True)
            ((out - target) ** 2).sum().backward()
            optimizer.step()
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ours[0], start[0])  # it did move
    with pytest.raises(ValueError, match="sparse row gradients"):
        dense = torch.nn.Parameter(torch.randn(3, 2))
        dense.grad = torch.ones(3, 2)
        RowAdam([dense]).step()


def test_epoch_history_splits_data_and_compute_time(planted):
    result = train(_fm(planted), planted, TrainSettings(epochs=1, batch_size=512, seed=3), CPU)
    epoch = result.history[0]
    assert epoch["train_seconds"] > 0 and 0 < epoch["data_seconds"] < epoch["train_seconds"]
    assert epoch["compute_seconds"] == pytest.approx(epoch["train_seconds"] - epoch["data_seconds"])
    assert epoch["train_rows_per_s"] == pytest.approx(len(planted.split("train")) / epoch["train_seconds"])


def test_compiled_search_model_matches_eager():
    """torch.compile runs the plain row expression (fused by Inductor); values and gradients equal eager."""
    from aim.models.gated import GatedInteractions
    from aim.nn.interactions import FUNCTIONS
    from aim.search.candidates import all_pairs

    torch.manual_seed(0)
    pairs = all_pairs(5)
    triples = torch.combinations(torch.arange(5), r=3)[:4]
    rows = [
        (pairs.repeat_interleave(4, 0), torch.arange(len(FUNCTIONS)).repeat(len(pairs))),
        (triples.repeat_interleave(4, 0), torch.arange(len(FUNCTIONS)).repeat(len(triples))),
    ]
    model = GatedInteractions([7, 5, 9, 4, 6], 4, rows, function_wise=True, hidden=(8,))
    ids = torch.stack([torch.randint(0, v, (32,)) for v in (7, 5, 9, 4, 6)], 1)
    model.eval()
    eager = model(ids)
    (eager_grad,) = torch.autograd.grad(eager.sum(), model.embedding.weight)
    compiled = torch.compile(model)(ids)
    (compiled_grad,) = torch.autograd.grad(compiled.sum(), model.embedding.weight)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)
