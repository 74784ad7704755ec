"""The building blocks against plain, loop-based reference computations."""

import pytest
import torch

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
