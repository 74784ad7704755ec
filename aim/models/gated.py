"""The search-time model of AutoFIS and AIM: a gate α per interaction row, no-affine batch norm.

logit = bias + Σ first-order + Σ_orders Σ_r α_r · BN(f_r(e)) (+ MLP(flatten(e)) for the deep variant).
Batch norm without scale or shift, one channel per row, stops α and the interaction from trading
scale, so |α| measures the row's contribution. Rows of each order come as index tensors, so one
module serves FIS (inner product only), IFS (every function, function-wise tables) and any order.
"""

from __future__ import annotations

import torch
from torch import nn

from aim.models.base import CTRModel
from aim.nn.interactions import FUNCTIONS, Interactions
from aim.nn.mlp import mlp


class GatedInteractions(CTRModel):
    """Gated interaction rows per order; ``alpha`` parameters are trained by GRDA, the rest by Adam."""

    def __init__(
        self,
        vocab_sizes: list[int],
        dim: int,
        rows: list[tuple[torch.Tensor, torch.Tensor]],
        n_multi_hot: int = 0,
        function_wise: bool = False,
        hidden: tuple[int, ...] = (),
        alpha_init: float = 0.6,
        dropout: float = 0.0,
    ):
        super().__init__(vocab_sizes, dim, n_multi_hot, tables=len(FUNCTIONS) if function_wise else 1)
        self.orders = nn.ModuleList(Interactions(index, fns, dim, function_wise) for index, fns in rows)
        self.alpha = nn.ParameterList(nn.Parameter(torch.full((len(index),), alpha_init)) for index, _ in rows)
        self.norms = nn.ModuleList(nn.BatchNorm1d(len(index), affine=False) for index, _ in rows)
        self.deep = mlp(len(vocab_sizes) * dim, list(hidden), 1, dropout) if hidden else None

    def architecture_parameters(self) -> list[nn.Parameter]:
        """The gates α (for GRDA)."""
        return list(self.alpha)

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the gates (for Adam)."""
        gates = {id(p) for p in self.alpha}
        return [p for p in self.parameters() if id(p) not in gates]

    def interaction_logit(self, emb: torch.Tensor) -> torch.Tensor:
        logit = emb.new_zeros(emb.shape[0])
        for layer, alpha, norm in zip(self.orders, self.alpha, self.norms, strict=True):
            logit = logit + (norm(layer(emb)) * alpha).sum(1)
        if self.deep is not None:
            logit = logit + self.deep(emb[:, :, 0].flatten(1)).squeeze(1)
        return logit
