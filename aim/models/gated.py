"""The model of AutoFIS and AIM in every stage: a gate α per interaction row, no-affine batch norm.

logit = bias + Σ first-order + Σ_orders Σ_r α_r · BN(f_r(e)) (+ an MLP).
Batch norm without scale or shift, one channel per row, stops α and the interaction from trading
scale, so |α| measures the row's contribution. Rows of each order come as index tensors, so one
module serves FIS (inner product only), IFS (every function, function-wise tables) and any order.

- search-interaction: the order being searched has ``searchable`` gates (GRDA).
- search-embed: ``embedding_gates`` multiplies BN(embeddings) by β ``[fields, dim]`` (GRDA); the
  function-wise tables of a field share β, as in the paper.
- retrain: ``keep`` gives narrow tables that store only the kept slots; ``deep="stacked"`` puts an
  MLP on top of the interaction values and the kept embeddings (AIM), ``"parallel"`` beside them
  (AutoDeepFM).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from aim.models.base import CTRModel
from aim.nn.compiling import is_compiling
from aim.nn.embedding import NarrowEmbedding
from aim.nn.gated_sum import gated_norm_sum
from aim.nn.interactions import FUNCTIONS, Interactions, tables
from aim.nn.mlp import mlp
from aim.search.architecture import Architecture

Deep = Literal["parallel", "stacked"]


class GatedInteractions(CTRModel):
    """Gated interaction rows per order; searched gates go to GRDA, everything else to Adam.

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
        deep: Deep = "parallel",
        embedding_gates: bool = False,
        beta_init: float = 0.6,
        keep: torch.Tensor | None = None,
    ):
        tables = len(FUNCTIONS) if function_wise else 1
        narrow = NarrowEmbedding(vocab_sizes, keep, n_multi_hot) if keep is not None else None
        super().__init__(vocab_sizes, dim, n_multi_hot, tables=tables, embedding=narrow)
        n = len(vocab_sizes)
        self.orders = nn.ModuleList(Interactions(index, fns, dim, function_wise) for index, fns in rows)
        starts = alpha_init if isinstance(alpha_init, list) else [torch.full((len(i),), alpha_init) for i, _ in rows]
        self.alpha = nn.ParameterList(nn.Parameter(start.clone().float()) for start in starts)
        self.searchable = list(searchable) if searchable is not None else [True] * len(rows)
        self.norms = nn.ModuleList(nn.BatchNorm1d(len(index), affine=False) for index, _ in rows)
        self.beta = nn.Parameter(torch.full((n, dim), beta_init)) if embedding_gates else None
        self.embedding_norm = nn.BatchNorm1d(n * tables * dim, affine=False) if embedding_gates else None
        # the MLP reads the kept slots (narrow tables' packed order) or table 0 of every field
        if narrow is None:
            slots = torch.zeros(n, tables, dim, dtype=torch.bool)
            slots[:, 0] = True
            self.register_buffer("deep_slots", torch.nonzero(slots.flatten()).flatten(), persistent=False)
            deep_width = len(self.deep_slots)
        else:
            deep_width = narrow.width
        self.deep_kind = deep
        # narrow tables build [B, n, T, d] only for gated rows or embedding gates
        self._needs_slots = embedding_gates or any(len(index) for index, _ in rows)
        width = deep_width + (sum(len(i) for i, _ in rows) if deep == "stacked" else 0)
        self.deep = mlp(width, list(hidden), 1, dropout) if hidden else None

    @classmethod
    def from_architecture(
        cls,
        arch: Architecture,
        vocab_sizes: list[int],
        n_multi_hot: int = 0,
        alpha_init: float | None = None,
        narrow: bool = True,
        **kwargs,
    ) -> GatedInteractions:
        """The model of an architecture's kept rows; α start at the searched values unless
        ``alpha_init`` is given; ``narrow`` stores only the kept embedding slots."""
        if len(arch.fields) != len(vocab_sizes):
            raise ValueError(f"architecture has {len(arch.fields)} fields, the data {len(vocab_sizes)}")
        per_order = [arch.rows(order) for order in arch.orders]
        alphas = [a if alpha_init is None else torch.full_like(a, alpha_init) for *_, a in per_order]
        keep = arch.keep_mask(every_field=bool(kwargs.get("hidden"))) if narrow else None
        return cls(
            vocab_sizes,
            arch.dim,
            [(index, fns) for index, fns, _ in per_order],
            n_multi_hot,
            function_wise=arch.function_wise,
            alpha_init=alphas,
            searchable=[False] * len(per_order),
            keep=keep,
            **kwargs,
        )

    def architecture_parameters(self) -> list[nn.Parameter]:
        """The gates under search: α of searchable orders, and β when embedding gates are on."""
        gates = [alpha for alpha, search in zip(self.alpha, self.searchable, strict=True) if search]
        return gates + ([self.beta] if self.beta is not None else [])

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the searched gates (for Adam)."""
        gates = {id(p) for p in self.architecture_parameters()}
        return [p for p in self.parameters() if id(p) not in gates]

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        if not isinstance(self.embedding, NarrowEmbedding):
            return super().forward(ids, multi_hot)
        # narrow tables: the MLP reads the packed kept numbers; [B, n, T, d] only when rows need it
        linear = self.linear_logit(ids, multi_hot)
        packed = self.embedding.packed(ids, multi_hot)
        emb = self.embedding.expand(packed) if self._needs_slots else None
        return linear + self.interaction_logit(emb, packed)

    def interaction_logit(self, emb: torch.Tensor | None, packed: torch.Tensor | None = None) -> torch.Tensor:
        """Gated rows (and the MLP) from ``emb`` ``[B, n, T, d]``; with narrow tables the MLP reads
        ``packed`` instead, and ``emb`` may be None when no order has a row."""
        if emb is None:
            values, logit = [], packed.new_zeros(packed.shape[0])
        else:
            if self.beta is not None:
                emb = self.embedding_norm(emb.flatten(1)).view_as(emb) * self.beta[:, None, :]
            logit = emb.new_zeros(emb.shape[0])
            layers = zip(self.orders, self.alpha, self.norms, strict=True)
            if (self.deep_kind == "stacked" and self.deep is not None) or is_compiling():
                values = [norm(layer(emb)) * alpha for layer, alpha, norm in layers]
            else:  # the gated rows are only summed: one pass per tile, no [B, R] in row order
                values, by_table = [], tables(emb)  # one layout change shared by every order
                for layer, alpha, norm in layers:
                    if len(layer.index):
                        logit = logit + gated_norm_sum(layer.parts(by_table), alpha, norm)
        for gated in values:
            logit = logit + gated.sum(1)
        if self.deep is not None:
            if packed is not None:
                deep_in = packed
            else:  # slot-major first (a free view of the interactions' layout), then one row gather
                deep_in = emb.permute(1, 2, 3, 0).reshape(-1, emb.shape[0]).index_select(0, self.deep_slots).t()
            if self.deep_kind == "stacked":
                parts = [deep_in, *(v for v in values if v.shape[1])]
                deep_in = torch.cat(parts, dim=1) if len(parts) > 1 else deep_in
            logit = logit + self.deep(deep_in).squeeze(1)
        return logit


def gated_from_config(vocab_sizes: list[int], architecture: dict, n_multi_hot: int = 0, **kwargs) -> GatedInteractions:
    """Build the retrain model from a JSON config (the architecture as a dict), as checkpoints do."""
    hidden = tuple(kwargs.pop("hidden", ()))
    return GatedInteractions.from_architecture(
        Architecture.from_dict(architecture), vocab_sizes, n_multi_hot, hidden=hidden, **kwargs
    )
