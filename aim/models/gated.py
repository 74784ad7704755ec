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
    """Gated interaction rows per order; searchable orders' ``alpha`` go to GRDA, the rest to Adam.

    ``rows`` is one ``(index [R, p], functions [R])`` pair per order; ``searchable[k]`` says whether
    order ``k``'s gates are being searched (default all). ``alpha_init`` may be a float or, per
    order, a tensor of starting values (e.g. the α kept by an earlier search).
    """

    def __init__(
        self,
        vocab_sizes: list[int],
        dim: int,
        rows: list[tuple[torch.Tensor, torch.Tensor]],
        n_multi_hot: int = 0,
        function_wise: bool = False,
        hidden: tuple[int, ...] = (),
        alpha_init: float | list[torch.Tensor] = 0.6,
        dropout: float = 0.0,
        searchable: list[bool] | None = None,
    ):
        super().__init__(vocab_sizes, dim, n_multi_hot, tables=len(FUNCTIONS) if function_wise else 1)
        self.orders = nn.ModuleList(Interactions(index, fns, dim, function_wise) for index, fns in rows)
        starts = alpha_init if isinstance(alpha_init, list) else [torch.full((len(i),), alpha_init) for i, _ in rows]
        self.alpha = nn.ParameterList(nn.Parameter(start.clone().float()) for start in starts)
        self.searchable = list(searchable) if searchable is not None else [True] * len(rows)
        self.norms = nn.ModuleList(nn.BatchNorm1d(len(index), affine=False) for index, _ in rows)
        self.deep = mlp(len(vocab_sizes) * dim, list(hidden), 1, dropout) if hidden else None

    def architecture_parameters(self) -> list[nn.Parameter]:
        """The gates α of the searched orders (for GRDA)."""
        return [alpha for alpha, search in zip(self.alpha, self.searchable, strict=True) if search]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the searched gates (for Adam)."""
        gates = {id(p) for p in self.architecture_parameters()}
        return [p for p in self.parameters() if id(p) not in gates]

    def interaction_logit(self, emb: torch.Tensor) -> torch.Tensor:
        logit = emb.new_zeros(emb.shape[0])
        for layer, alpha, norm in zip(self.orders, self.alpha, self.norms, strict=True):
            logit = logit + (norm(layer(emb)) * alpha).sum(1)
        if self.deep is not None:
            logit = logit + self.deep(emb[:, :, 0].flatten(1)).squeeze(1)
        return logit
