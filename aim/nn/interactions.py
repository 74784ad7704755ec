"""AIM's four interaction functions, generalised to order p, over a list of (interaction, function) rows.

Each row ``r`` names ``p`` fields (``index[r]``) and one function (``functions[r]``). One code path
serves every order and every function: gather the ``p`` embeddings of each row (from the row's
function-wise table), project them (rank-1 outer product rows only), multiply them element-wise
across the ``p`` fields, and take a kernel-weighted sum over the embedding dimension:

- inner:          Σ_d Π_k e_k
- vector kernel:  Σ_d w_r ⊙ Π_k e_k                  (w_r ∈ R^d per row)
- scalar kernel:  r_r · Σ_d Π_k e_k                   (one scalar per row)
- outer (rank-1): Π_k (u_{r,k}ᵀ e_k)                  (p projections per row)

No Python loop over rows: rows are index tensors, so search (all candidates × all functions) and
retrain (only the kept rows) differ only in how many rows there are.
"""

from __future__ import annotations

import torch
from torch import nn

FUNCTIONS = ("inner", "vector_kernel", "scalar_kernel", "outer")
INNER, VECTOR, SCALAR, OUTER = range(len(FUNCTIONS))


class Interactions(nn.Module):
    """Values of ``R`` interaction rows of one order ``p``: ``[B, n, T, d]`` embeddings -> ``[B, R]``.

    ``function_wise``: row ``r`` reads table ``functions[r]`` (IFS); otherwise every row reads table 0.
    """

    def __init__(self, index: torch.Tensor, functions: torch.Tensor, dim: int, function_wise: bool = False):
        super().__init__()
        if index.ndim != 2 or functions.shape != index.shape[:1]:
            raise ValueError(f"index {tuple(index.shape)} must be [R, p] and functions [R]")
        rows, order = index.shape
        self.register_buffer("index", index.long())
        self.register_buffer("functions", functions.long())
        self.register_buffer("tables", functions.long() if function_wise else torch.zeros(rows, dtype=torch.long))
        self.register_buffer("outer_rows", torch.nonzero(functions == OUTER).flatten())
        self.vector_kernel = nn.Parameter(torch.ones(rows, dim))
        self.scalar_kernel = nn.Parameter(torch.ones(rows))
        self.projections = nn.Parameter(torch.randn(len(self.outer_rows), order, dim) / dim**0.5)
        first = torch.zeros(dim)
        first[0] = 1.0
        self.register_buffer("first_dim", first)

    @property
    def order(self) -> int:
        return self.index.shape[1]

    def kernel(self) -> torch.Tensor:
        """Per-row weights over the embedding dimension, ``[R, d]``."""
        f = self.functions.unsqueeze(1)
        ones = torch.ones_like(self.vector_kernel)
        k = torch.where(f == VECTOR, self.vector_kernel, ones)
        k = torch.where(f == SCALAR, self.scalar_kernel.unsqueeze(1) * ones, k)
        return torch.where(f == OUTER, self.first_dim.expand_as(k), k)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        batch = emb.shape[0]
        rows = emb[:, self.index, self.tables.unsqueeze(1)]  # [B, R, p, d]
        if len(self.outer_rows):
            projected = (rows[:, self.outer_rows] * self.projections).sum(-1, keepdim=True)  # [B, R_o, p, 1]
            tail = torch.ones(*projected.shape[:-1], rows.shape[-1] - 1, dtype=rows.dtype, device=rows.device)
            rows = rows.index_copy(1, self.outer_rows, torch.cat([projected, tail], dim=-1))
        product = rows.prod(dim=2)  # [B, R, d]
        return (product * self.kernel()).sum(-1).view(batch, -1)
