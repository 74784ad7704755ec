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
    Rows are computed in two vectorised groups, element-wise products (inner and both kernels) and
    projected products (outer), then put back in row order.
    """

    def __init__(self, index: torch.Tensor, functions: torch.Tensor, dim: int, function_wise: bool = False):
        super().__init__()
        if index.ndim != 2 or functions.shape != index.shape[:1]:
            raise ValueError(f"index {tuple(index.shape)} must be [R, p] and functions [R]")
        rows, order = index.shape
        functions = functions.long()
        tables = functions if function_wise else torch.zeros(rows, dtype=torch.long)
        outer = functions == OUTER
        self.register_buffer("index", index.long())
        self.register_buffer("functions", functions)
        self._derived("tables", tables)
        self._derived("product_rows", torch.nonzero(~outer).flatten())
        self._derived("outer_rows", torch.nonzero(outer).flatten())
        self._derived("order_back", torch.cat([self.product_rows, self.outer_rows]).argsort())
        product_functions = functions[self.product_rows]
        self._derived("vector_at", torch.nonzero(product_functions == VECTOR).flatten())
        self._derived("scalar_at", torch.nonzero(product_functions == SCALAR).flatten())
        self.vector_kernel = nn.Parameter(torch.ones(len(self.vector_at), dim))  # only rows that use them
        self.scalar_kernel = nn.Parameter(torch.ones(len(self.scalar_at)))
        self.projections = nn.Parameter(torch.randn(len(self.outer_rows), order, dim) / dim**0.5)

    def _derived(self, name: str, value: torch.Tensor) -> None:
        """A buffer computed from ``index`` and ``functions``: rebuilt, not saved in checkpoints."""
        self.register_buffer(name, value, persistent=False)

    @property
    def order(self) -> int:
        return self.index.shape[1]

    def kernel(self) -> torch.Tensor:
        """Weights over the embedding dimension of the element-wise rows, ``[R_e, d]``."""
        k = self.vector_kernel.new_ones(len(self.product_rows), self.projections.shape[-1])
        k = k.index_copy(0, self.vector_at, self.vector_kernel)
        return k.index_copy(0, self.scalar_at, self.scalar_kernel.unsqueeze(1).expand(-1, k.shape[1]))

    def _factors(self, emb: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The ``p`` embeddings of each row in ``rows``: ``[B, len(rows), p, d]`` (one gather)."""
        batch, n, tables, dim = emb.shape
        flat = (self.index[rows] * tables + self.tables[rows].unsqueeze(1)).flatten()
        return emb.reshape(batch, n * tables, dim).index_select(1, flat).view(batch, len(rows), self.order, dim)

    @staticmethod
    def _product(factors: torch.Tensor) -> torch.Tensor:
        """Element-wise product over the order axis (a loop over p <= 4 factors: cheap backward)."""
        out = factors[:, :, 0]
        for k in range(1, factors.shape[2]):
            out = out * factors[:, :, k]
        return out

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        parts = []
        if len(self.product_rows):
            parts.append((self._product(self._factors(emb, self.product_rows)) * self.kernel()).sum(-1))
        if len(self.outer_rows):
            projected = (self._factors(emb, self.outer_rows) * self.projections).sum(-1, keepdim=True)
            parts.append(self._product(projected).squeeze(-1))
        if not parts:
            return emb.new_zeros(emb.shape[0], 0)
        return torch.cat(parts, dim=1)[:, self.order_back]
