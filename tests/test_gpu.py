"""CUDA gives the CPU's results within float tolerance (runs where a GPU is present; CI has none)."""

import pytest
import torch

from aim.models.factorization import DeepFM
from aim.models.gated import GatedInteractions
from aim.nn.interactions import FUNCTIONS
from aim.search.candidates import all_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

VOCAB = [11, 7, 13, 5, 9, 6]


def _models():
    torch.manual_seed(0)
    pairs = all_pairs(len(VOCAB))
    triples = torch.combinations(torch.arange(len(VOCAB)), r=3)[:5]
    rows = [
        (index.repeat_interleave(len(FUNCTIONS), 0), torch.arange(len(FUNCTIONS)).repeat(len(index)))
        for index in (pairs, triples)
    ]
    search = GatedInteractions(VOCAB, 4, rows, function_wise=True, hidden=(8,), embedding_gates=True)
    return [search, DeepFM(VOCAB, 4, hidden=(16, 8))]


@pytest.mark.parametrize("which", [0, 1])
def test_cuda_forward_and_gradients_equal_cpu(which):
    model = _models()[which].double()
    ids = torch.stack([torch.randint(0, v, (64,)) for v in VOCAB], 1)
    results = []
    for device in ("cpu", "cuda"):
        model.to(device)
        out = model(ids.to(device))
        grads = torch.autograd.grad(out.sum(), list(model.parameters()), allow_unused=True)
        results.append((out.cpu(), [g.cpu() for g in grads if g is not None]))
    torch.testing.assert_close(results[1][0], results[0][0])
    for cuda_grad, cpu_grad in zip(results[1][1], results[0][1], strict=True):
        torch.testing.assert_close(cuda_grad, cpu_grad)
