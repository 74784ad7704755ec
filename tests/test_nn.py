"""The building blocks against plain, loop-based reference computations."""

import pytest
import torch

from aim.nn import interactions
from aim.nn.embedding import FieldEmbedding
from aim.nn.interactions import FUNCTIONS, INNER, OUTER, SCALAR, VECTOR, Interactions
from aim.nn.mlp import mlp

torch.manual_seed(0)


def test_field_embedding_offsets_and_multi_hot_mean_pooling():
    emb = FieldEmbedding([3, 4, 5], dim=2, n_multi_hot=1, init_std=1.0)
    ids = torch.tensor([[0, 0], [2, 3]])
    mh_ids = torch.tensor([[1, 4, 0], [2, 0, 0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    out = emb(ids, [(mh_ids, mask)])
    assert out.shape == (2, 3, 1, 2)
    w = emb.weight
    torch.testing.assert_close(out[0, 0, 0], w[0])
    torch.testing.assert_close(out[0, 1, 0], w[3])  # field 1 starts after field 0's 3 rows
    torch.testing.assert_close(out[1, 1, 0], w[3 + 3])
    torch.testing.assert_close(out[0, 2, 0], (w[7 + 1] + w[7 + 4]) / 2)  # mean over the mask
    torch.testing.assert_close(out[1, 2, 0], torch.zeros(2))  # an all-padding row pools to zero


def test_function_wise_tables_are_separate():
    emb = FieldEmbedding([5, 5], dim=3, tables=4, init_std=1.0)
    out = emb(torch.tensor([[1, 2]]))
    assert out.shape == (1, 2, 4, 3)
    assert not torch.allclose(out[0, 0, 0], out[0, 0, 1])


def _reference(emb, layer, r):
    fields = layer.index[r].tolist()
    f = int(layer.functions[r])
    table = int(layer.tables[r])
    vectors = [emb[:, i, table] for i in fields]
    if f == OUTER:
        k = int((layer.outer_rows == r).nonzero())
        value = torch.ones(emb.shape[0])
        for slot, v in enumerate(vectors):
            value = value * (v * layer.projections[k, slot]).sum(-1)
        return value
    product = torch.ones_like(vectors[0])
    for v in vectors:
        product = product * v
    own = int((layer.functions[:r] == f).sum())  # kernels are stored for the rows that use them, in order
    if f == VECTOR:
        return (product * layer.vector_kernel[own]).sum(-1)
    if f == SCALAR:
        return layer.scalar_kernel[own] * product.sum(-1)
    return product.sum(-1)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("function_wise", [False, True])
def test_every_function_at_every_order_matches_the_reference(order, function_wise):
    n, d, batch = 6, 5, 7
    emb = torch.randn(batch, n, len(FUNCTIONS) if function_wise else 1, d)
    index = torch.combinations(torch.arange(n), r=order)[:9]
    index = index.repeat_interleave(len(FUNCTIONS), dim=0)  # every interaction with every function
    functions = torch.arange(len(FUNCTIONS)).repeat(len(index) // len(FUNCTIONS))
    layer = Interactions(index, functions, d, function_wise=function_wise)
    with torch.no_grad():
        layer.vector_kernel.normal_()
        layer.scalar_kernel.normal_()
    out = layer(emb)
    assert out.shape == (batch, len(index))
    for r in range(len(index)):
        torch.testing.assert_close(out[:, r], _reference(emb, layer, r), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_mixed_rows_gradients_match_the_reference(order, blocks, monkeypatch):
    """Rows of every function, interleaved (Gram, tiled and projected groups): the gradients of the
    embeddings and of every kernel, through the row reordering, are the reference's (also with the
    Gram combinations formed a few samples at a time)."""
    if blocks:
        monkeypatch.setattr(interactions, "GRAM_FLOATS", 40)
    n, d, batch = 5, 3, 6
    torch.manual_seed(order)
    index = torch.combinations(torch.arange(n), r=order)[:5].repeat_interleave(len(FUNCTIONS), dim=0)
    functions = torch.randperm(len(index)) % len(FUNCTIONS)  # outer and element-wise rows interleaved
    layer = Interactions(index, functions, d, function_wise=True)
    weights = torch.randn(batch, len(index))
    emb = torch.randn(batch, n, len(FUNCTIONS), d, requires_grad=True)
    with torch.no_grad():
        layer.vector_kernel.normal_()
        layer.scalar_kernel.normal_()
    tensors = [emb, layer.vector_kernel, layer.scalar_kernel, layer.projections]
    ours = torch.autograd.grad((layer(emb) * weights).sum(), tensors)
    reference = torch.stack([_reference(emb, layer, r) for r in range(len(index))], dim=1)
    expected = torch.autograd.grad((reference * weights).sum(), tensors)
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_gradients_reach_the_used_parameters_only():
    emb = torch.randn(4, 3, 1, 2, requires_grad=True)
    layer = Interactions(torch.tensor([[0, 1], [1, 2]]), torch.tensor([VECTOR, INNER]), 2)
    layer(emb).sum().backward()
    assert layer.vector_kernel.shape == (1, 2) and layer.scalar_kernel.numel() == 0  # no unused parameters
    assert layer.vector_kernel.grad.abs().sum() > 0
    assert layer.projections.numel() == 0
    assert emb.grad[:, 2].abs().sum() > 0


def test_mlp_shapes():
    block = mlp(10, [8, 4], outputs=1, dropout=0.1)
    assert block(torch.randn(5, 10)).shape == (5, 1)
    assert len(mlp(3, [])) == 1


def test_fm_identity_equals_the_sum_of_pair_rows():
    torch.manual_seed(0)
    emb = torch.randn(5, 6, 1, 4, dtype=torch.float64)
    complete = Interactions(torch.combinations(torch.arange(6), r=2), torch.zeros(15, dtype=torch.long), 4)
    subset = Interactions(torch.combinations(torch.arange(6), r=2)[:14], torch.zeros(14, dtype=torch.long), 4)
    assert complete.all_inner_pairs and subset.all_inner_pairs
    torch.testing.assert_close(complete.total(emb), complete(emb).sum(1))  # identity path
    torch.testing.assert_close(subset.total(emb), subset(emb).sum(1))  # generic path (a pair missing)
    pairs = torch.combinations(torch.arange(6), r=2)
    reference = sum((emb[:, i, 0] * emb[:, j, 0]).sum(-1) for i, j in pairs.tolist())
    torch.testing.assert_close(complete.total(emb), reference)


def test_tiled_rows_gradients_match_autograd(monkeypatch):
    """The hand-written tiled backward equals autograd through row_values, over several tiles
    (leading products and last fields each repeated across rows)."""
    monkeypatch.setattr(interactions, "TILE_FLOATS", 40)  # tiles of one or two rows
    torch.manual_seed(0)
    lead = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    pairs = torch.stack([torch.randint(0, 4, (6,)), torch.randint(0, 7, (6,))], 1)
    weights = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    inputs = (lead, x, weights)
    assert torch.autograd.gradcheck(lambda a, b, w: interactions.TiledRows.apply(a, b, pairs, w), inputs)
    grad = torch.randn(6, 5, dtype=torch.float64)
    tiled = torch.autograd.grad(interactions.TiledRows.apply(lead, x, pairs, weights), inputs, grad)
    plain = torch.autograd.grad(interactions.row_values(lead, x, pairs, weights), inputs, grad)
    for a, b in zip(tiled, plain, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_split_rows_rebuilds_every_row_and_shares_the_grown_prefixes(order):
    """Each row is its prefix plus its last field, and AIM's candidates (k top interactions of the
    order below, each plus every other field) need no more than those k leading products."""
    n, k = 12, 5
    torch.manual_seed(order)
    top = torch.stack([torch.randperm(n)[: order - 1].sort().values for _ in range(k)]).unique(dim=0)
    grown = torch.cat([top.repeat_interleave(n, 0), torch.arange(n).repeat(len(top)).unsqueeze(1)], 1)
    rows = grown[(grown[:, :-1] != grown[:, -1:]).all(1)].sort(1).values.unique(dim=0)
    rows = rows[torch.randperm(len(rows))]
    prefixes, which, last = interactions.split_rows(rows)
    rebuilt = torch.cat([prefixes[which], last.unsqueeze(1)], 1).sort(1).values
    torch.testing.assert_close(rebuilt, rows)
    assert len(prefixes) <= len(top)
    assert len(prefixes) < len(rows[:, :-1].unique(dim=0)) or order == 2  # fewer than the sorted leading fields


@pytest.mark.parametrize("order", [2, 3, 4])
def test_projected_rows_equal_projecting_each_factor(order):
    """Projection first (grouped by slot, one batched matmul) gives Π_k (u_rk · x[slot_rk]) and its gradients."""
    torch.manual_seed(order)
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    slots = torch.randint(0, 7, (9, order))  # repeated slots: groups of different sizes
    u = torch.randn(9, order, 3, dtype=torch.float64, requires_grad=True)
    reference = (x[slots] * u.unsqueeze(-1)).sum(2).prod(1)
    fast = interactions.projected_rows(x, slots, u)
    torch.testing.assert_close(fast, reference)
    grad = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(fast, (x, u), grad), torch.autograd.grad(reference, (x, u), grad), strict=True):
        torch.testing.assert_close(a, b)
