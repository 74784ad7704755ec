"""Base models against their textbook formulas."""

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
