"""Base models against their textbook formulas."""

import pytest
import torch

from aim.models import BASE_MODELS, FM, IPNN, DeepFM, FwFM

torch.manual_seed(0)
VOCAB = [4, 5, 6, 3]


def _inputs(batch=8, multi_hot=False):
    ids = torch.stack([torch.randint(0, v, (batch,)) for v in (VOCAB[:-1] if multi_hot else VOCAB)], dim=1)
    if not multi_hot:
        return ids, []
    mh = torch.randint(0, VOCAB[-1], (batch, 2))
    return ids, [(mh, torch.ones(batch, 2))]


def _fm_formula(model, ids):
    e = model.embedding(ids)[:, :, 0]  # [B, n, d]
    pairwise = 0.5 * ((e.sum(1) ** 2) - (e**2).sum(1)).sum(1)
    return model.bias + model.first_order(ids).sum(dim=(1, 2, 3)) + pairwise


def test_fm_equals_the_classic_identity():
    model = FM(VOCAB, dim=6)
    with torch.no_grad():
        model.first_order.weight.normal_()
    ids, _ = _inputs()
    torch.testing.assert_close(model(ids), _fm_formula(model, ids))


def test_fwfm_with_unit_weights_is_fm_and_learns_pair_weights():
    fwfm, fm = FwFM(VOCAB, dim=6), FM(VOCAB, dim=6)
    fm.load_state_dict(fwfm.state_dict(), strict=False)
    ids, _ = _inputs()
    torch.testing.assert_close(fwfm(ids), fm(ids))
    with torch.no_grad():
        fwfm.pairs.scalar_kernel[0] = 0.0
    assert not torch.allclose(fwfm(ids), fm(ids))


def test_deepfm_is_fm_plus_mlp():
    model = DeepFM(VOCAB, dim=6, hidden=(8,))
    ids, _ = _inputs()
    model.eval()
    with torch.no_grad():
        fm_part = _fm_formula(model, ids)
        deep = model.deep(model.embedding(ids).flatten(1)).squeeze(1)
        torch.testing.assert_close(model(ids), fm_part + deep)


def test_every_model_trains_on_multi_hot_inputs():
    ids, mh = _inputs(multi_hot=True)
    y = torch.randint(0, 2, (8,)).float()
    for name, cls in BASE_MODELS.items():
        model = cls(VOCAB, dim=4, n_multi_hot=1, hidden=(8,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, mh), y)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), name


def test_ipnn_input_width_counts_pairs():
    model = IPNN(VOCAB, dim=3, hidden=(5,))
    assert model.deep[0].in_features == 4 * 3 + 6


def test_transfer_variants_use_the_architecture_rows():
    from aim.nn.interactions import OUTER, VECTOR
    from aim.search.architecture import Architecture

    fields = ["a", "b", "c", "d"]
    pairs = Architecture.from_gates(
        fields, torch.tensor([[0, 1], [0, 1], [2, 3]]), torch.tensor([0, OUTER, VECTOR]), torch.ones(3), 4
    )
    triple = Architecture.from_gates(fields, torch.tensor([[0, 1, 2]]), torch.tensor([0]), torch.ones(1), 4)
    arch = pairs.merge(triple).to_dict()
    vocab = [5, 6, 7, 8]
    deepfm = DeepFM(vocab, dim=4, hidden=(8,), architecture=arch)
    ipnn = IPNN(vocab, dim=4, hidden=(8,), architecture=arch)
    assert deepfm.pairs.count == ipnn.pairs.count == 4
    assert [layer.order for layer in ipnn.pairs.orders] == [2, 3]
    assert ipnn.deep[0].in_features == 4 * 4 + 4
    ids = torch.tensor([[1, 2, 3, 4], [0, 5, 6, 7]])
    emb = deepfm.embedding(ids)
    manual = (emb[:, 0, 0] * emb[:, 1, 0]).sum(1) + (emb[:, 0, 0] * emb[:, 1, 0] * emb[:, 2, 0]).sum(1)
    values = deepfm.pairs(emb)
    torch.testing.assert_close(values[:, 0], (emb[:, 0, 0] * emb[:, 1, 0]).sum(1))
    torch.testing.assert_close(values[:, 0] + values[:, 3], manual)
    with pytest.raises(ValueError, match="4 fields, the data 3"):
        DeepFM([5, 6, 7], dim=4, architecture=arch)
