"""The factorization-model family: LR, FM, FwFM, DeepFM (the control) and IPNN.

Pairwise terms use :class:`aim.nn.interactions.Interactions` rows: FM is inner-product rows,
FwFM is scalar-kernel rows (one learned weight per field pair), IPNN feeds inner products to an MLP.
Given an ``architecture`` (AIM's searched result, as a dict), FM, DeepFM and IPNN use its kept
interaction–function rows of every order instead of all pairs: the "transfer" variants of the AIM
paper's section 4.6, on one shared embedding table.
"""

from __future__ import annotations

import torch
from torch import nn

from aim.models.base import CTRModel
from aim.nn.interactions import INNER, SCALAR, Interactions
from aim.nn.mlp import mlp
from aim.search.architecture import Architecture
from aim.search.candidates import all_pairs


def pair_rows(n_fields: int, function: int, pairs=None, dim: int = 1) -> Interactions:
    """Interaction rows for ``pairs`` (tensor or nested list; default: all pairs) with one function."""
    index = all_pairs(n_fields) if pairs is None else torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    return Interactions(index, torch.full((len(index),), function), dim)


class InteractionRows(nn.Module):
    """Rows of one or more orders on a shared table: values ``[B, R_total]`` concatenated."""

    def __init__(self, n_fields: int, dim: int, pairs=None, architecture: dict | None = None, function: int = INNER):
        super().__init__()
        if architecture is None:
            self.orders = nn.ModuleList([pair_rows(n_fields, function, pairs, dim)])
        else:
            arch = Architecture.from_dict(architecture)
            if len(arch.fields) != n_fields:
                raise ValueError(f"architecture has {len(arch.fields)} fields, the data {n_fields}")
            self.orders = nn.ModuleList(Interactions(*arch.rows(p)[:2], dim) for p in arch.orders)

    @property
    def count(self) -> int:
        return sum(len(layer.index) for layer in self.orders)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.cat([layer(emb) for layer in self.orders], dim=1)

    def total(self, emb: torch.Tensor) -> torch.Tensor:
        """Sum of every row's value, ``[B]`` (FM's all pairs take the O(n·d) identity)."""
        return sum(layer.total(emb) for layer in self.orders)


class LR(CTRModel):
    """Logistic regression on one-hot fields."""

    def __init__(self, vocab_sizes: list[int], n_multi_hot: int = 0, **_):
        super().__init__(vocab_sizes, 0, n_multi_hot)


class FM(CTRModel):
    """Factorization machine: Σ_{i<j} <e_i, e_j> over the given pairs (default all)."""

    def __init__(self, vocab_sizes, dim=16, n_multi_hot=0, pairs=None, architecture=None, **_):
        super().__init__(vocab_sizes, dim, n_multi_hot)
        self.pairs = InteractionRows(len(vocab_sizes), dim, pairs, architecture)

    def interaction_logit(self, emb):
        return self.pairs.total(emb)


class FwFM(CTRModel):
    """Field-weighted FM: Σ r_ij <e_i, e_j>, one scalar per field pair."""

    def __init__(self, vocab_sizes, dim=16, n_multi_hot=0, **_):
        super().__init__(vocab_sizes, dim, n_multi_hot)
        self.pairs = pair_rows(len(vocab_sizes), SCALAR, None, dim)  # FwFM is pairs only

    def interaction_logit(self, emb):
        return self.pairs(emb).sum(1)


class DeepFM(FM):
    """FM term plus an MLP on the flattened embeddings, in parallel, sharing the embeddings."""

    def __init__(
        self,
        vocab_sizes,
        dim=16,
        n_multi_hot=0,
        hidden=(400, 400, 400),
        dropout=0.0,
        pairs=None,
        architecture=None,
        **_,
    ):
        super().__init__(vocab_sizes, dim, n_multi_hot, pairs, architecture)
        self.deep = mlp(len(vocab_sizes) * dim, list(hidden), 1, dropout)

    def interaction_logit(self, emb):
        return super().interaction_logit(emb) + self.deep(emb.flatten(1)).squeeze(1)


class IPNN(CTRModel):
    """Inner-product PNN: MLP([flattened embeddings, inner products of the given pairs])."""

    def __init__(
        self,
        vocab_sizes,
        dim=16,
        n_multi_hot=0,
        hidden=(400, 400, 400),
        dropout=0.0,
        pairs=None,
        architecture=None,
        **_,
    ):
        super().__init__(vocab_sizes, dim, n_multi_hot)
        self.pairs = InteractionRows(len(vocab_sizes), dim, pairs, architecture)
        self.deep = mlp(len(vocab_sizes) * dim + self.pairs.count, list(hidden), 1, dropout)

    def interaction_logit(self, emb):
        return self.deep(torch.cat([emb.flatten(1), self.pairs(emb)], dim=1)).squeeze(1)
