"""The fused gated batch-norm sum equals BatchNorm1d(affine=False) · α summed over rows: values,
gradients of every input and parameter, the running statistics, and eval mode."""

import copy

import pytest
import torch

from aim.models.gated import GatedInteractions
from aim.nn.gated_sum import gated_norm_sum
from aim.nn.interactions import tables
from aim.search.candidates import all_pairs


def _reference(model: GatedInteractions, emb: torch.Tensor) -> torch.Tensor:
    """The plain path: rows in row order, batch norm, · α, summed."""
    logit = emb.new_zeros(emb.shape[0])
    for layer, alpha, norm in zip(model.orders, model.alpha, model.norms, strict=True):
        logit = logit + (norm(layer(emb)) * alpha).sum(1)
    return logit


def _rows(n: int, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = all_pairs(n)
    index = pairs if order == 2 else torch.cat([pairs, (pairs[:, 1:] + 1) % n], dim=1)[: 3 * n]
    index = index.repeat_interleave(4, dim=0)
    return index, torch.arange(4).repeat(len(index) // 4)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("batch", [64, 3])
def test_fused_sum_matches_batch_norm_alpha_and_sum(order, batch):
    torch.manual_seed(order)
    n, dim = 7, 5
    index, functions = _rows(n, order)
    model = GatedInteractions([9] * n, dim, [(index, functions)], function_wise=True, alpha_init=0.0)
    with torch.no_grad():
        model.alpha[0].uniform_(-1, 1)
        model.orders[0].vector_kernel.uniform_(0.5, 1.5)
        model.orders[0].scalar_kernel.uniform_(0.5, 1.5)
    reference = copy.deepcopy(model)
    emb = (torch.randn(batch, n, 4, dim) * 0.3 + 0.2).requires_grad_()  # a mean: centring matters
    emb_ref = emb.detach().clone().requires_grad_()
    weights = torch.randn(batch)

    fused = gated_norm_sum(model.orders[0].parts(tables(emb)), model.alpha[0], model.norms[0])
    plain = _reference(reference, emb_ref)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    (fused * weights).sum().backward()
    (plain * weights).sum().backward()
    torch.testing.assert_close(emb.grad, emb_ref.grad, rtol=1e-4, atol=1e-6)
    # (scalar kernels: batch norm undoes a row's scale, so theirs are float noise around 0)
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=2e-5, msg=lambda m, name=name: f"{name}: {m}")
    norm, ref_norm = model.norms[0], reference.norms[0]
    torch.testing.assert_close(norm.running_mean, ref_norm.running_mean)
    torch.testing.assert_close(norm.running_var, ref_norm.running_var)
    assert int(norm.num_batches_tracked) == int(ref_norm.num_batches_tracked) == 1

    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            gated_norm_sum(model.orders[0].parts(tables(emb)), model.alpha[0], model.norms[0]),
            _reference(reference, emb),
            rtol=1e-5,
            atol=1e-5,
        )


def test_model_logits_and_steps_match_the_plain_path():
    torch.manual_seed(3)
    n, vocab = 6, [11] * 6
    model = GatedInteractions(vocab, 4, [_rows(n, 2), _rows(n, 3)], function_wise=True)  # orders share tables
    plain = copy.deepcopy(model)
    plain.interaction_logit = lambda emb, packed=None: _reference(plain, emb)
    ids = torch.randint(0, 11, (128, n))
    labels = torch.randint(0, 2, (128,)).float()
    for m in (model, plain):
        opt = torch.optim.SGD(m.parameters(), lr=0.5)
        for _ in range(3):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(m(ids), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(model(ids), plain(ids), rtol=1e-4, atol=1e-5)
    for p, q in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
