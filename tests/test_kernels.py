"""The fused CPU kernels (aim/nn/kernels.py) against the PyTorch path they replace."""

import logging

import pytest
import torch

from aim.nn import interactions, kernels
from aim.nn.interactions import FUNCTIONS, Interactions, tables


def _sources(n: int, d: int, batch: int, tables_: int = 3) -> torch.Tensor:
    """A [n, d, B] block of a [n, T, d, B] layout: strided between slots, as tables() gives."""
    layout = torch.randn(n, tables_, d, batch)
    return layout[:, 1].requires_grad_()


def test_the_kernels_build_on_this_machine():
    assert kernels.cpu_kernels() is not None
    assert kernels.serves(torch.zeros(2)) and not kernels.serves(torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("in_place", [False, True])
def test_product_rows_match_row_values(in_place):
    """Values and gradients over two blocks of samples (one partly filled), strided sources, and
    the leading factors read from the same block as the last ones (order-2 rows)."""
    torch.manual_seed(1)
    n, d, batch, rows = 7, 5, 300, 23
    x = _sources(n, d, batch)
    lead = x if in_place else torch.randn(4, d, batch, requires_grad=True)
    which = torch.randint(0, n if in_place else 4, (rows,))
    last = (which + torch.randint(1, n, (rows,))) % n
    last[:2] = which[:2]  # a slot with itself (a square; in place: both factors from one slot)
    pairs = torch.stack([which, last], 1)
    weights = torch.randn(rows, d, requires_grad=True)
    grad = torch.randn(rows, batch)
    inputs = (x, weights) if in_place else (lead, x, weights)
    fused = kernels.FusedProductRows.apply(lead, x, pairs, weights)
    plain = interactions.row_values(lead, x, pairs, weights)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    ours, reference = torch.autograd.grad(fused, inputs, grad), torch.autograd.grad(plain, inputs, grad)
    for got, want in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_projected_rows_match_the_pytorch_path(order):
    torch.manual_seed(order)
    n, d, batch, rows = 6, 4, 260, 17
    x = _sources(n, d, batch)
    slots = torch.stack([torch.randperm(n)[:order] for _ in range(rows)])
    projections = torch.randn(rows, order, d, requires_grad=True)
    grad = torch.randn(rows, batch)
    fused = kernels.FusedProjectedRows.apply(x, slots, projections)
    plain = interactions.projected_rows(x, slots, projections)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    got = torch.autograd.grad(fused, (x, projections), grad)
    want = torch.autograd.grad(plain, (x, projections), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", [2, 3])
def test_a_layer_gives_the_same_values_and_gradients_with_and_without_kernels(order, monkeypatch):
    torch.manual_seed(order)
    n, d, batch = 8, 6, 270
    index = torch.combinations(torch.arange(n), r=order)[:12].repeat_interleave(len(FUNCTIONS), dim=0)
    layer = Interactions(index, torch.arange(len(FUNCTIONS)).repeat(12), d, function_wise=True)
    with torch.no_grad():
        layer.vector_kernel.normal_()
    emb = torch.randn(batch, n, len(FUNCTIONS), d, requires_grad=True)
    grad = torch.randn(batch, len(index))
    tensors = [emb, layer.vector_kernel, layer.projections]

    def run():
        values = torch.cat([part for part, _ in layer.parts(tables(emb))])
        return values, torch.autograd.grad(values, tensors, grad.t()[layer.computed_rows])

    fused = run()
    monkeypatch.setattr(kernels, "_mode", "off")
    assert not kernels.serves(emb)
    plain = run()
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(fused[1], plain[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_failed_build_falls_back_to_pytorch_and_says_why(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(kernels, "SOURCE", tmp_path / "missing.cpp")
    monkeypatch.setattr(kernels, "_tried", False)
    monkeypatch.setattr(kernels, "_loaded", None)
    with caplog.at_level(logging.WARNING, logger="aim.nn.kernels"):
        assert kernels.cpu_kernels() is None
    assert "unavailable" in caplog.text and "compute.cpu_kernels" in caplog.text
    assert not kernels.serves(torch.zeros(1))
    layer = Interactions(torch.tensor([[0, 1], [1, 2]]), torch.tensor([1, 3]), 3)
    assert layer(torch.randn(5, 3, 1, 3)).shape == (5, 2)  # the PyTorch path still serves the rows


def test_configure_refuses_unknown_modes():
    with pytest.raises(ValueError, match="auto or off"):
        kernels.configure("fast")
