"""What every CTR model shares: first-order weights and field embeddings over the same inputs.

Inputs are the prepared arrays as tensors: ``ids`` ``[B, F]`` for single-valued fields and a list of
``(ids, mask)`` pairs ``[B, L]`` for multi-hot fields. ``forward`` returns logits ``[B]``.
"""

from __future__ import annotations

import torch
from torch import nn

from aim.nn.embedding import FieldEmbedding


class CTRModel(nn.Module):
    """Base: ``bias + Σ first-order weights`` plus whatever :meth:`interaction_logit` adds."""

    def __init__(
        self,
        vocab_sizes: list[int],
        dim: int,
        n_multi_hot: int = 0,
        tables: int = 1,
        embedding: nn.Module | None = None,
    ):
        super().__init__()
        self.n_fields, self.dim = len(vocab_sizes), dim
        self.bias = nn.Parameter(torch.zeros(1))
        self.first_order = FieldEmbedding(vocab_sizes, 1, n_multi_hot, init_std=0.0)
        if embedding is None and dim:
            embedding = FieldEmbedding(vocab_sizes, dim, n_multi_hot, tables=tables)
        self.embedding = embedding

    def interaction_logit(self, emb: torch.Tensor) -> torch.Tensor:
        """Model-specific part of the logit from embeddings ``[B, n, T, d]``; LR has none."""
        return emb.new_zeros(emb.shape[0])

    def linear_logit(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        """``bias + Σ first-order weights``, ``[B]``."""
        return self.bias + self.first_order(ids, multi_hot).sum(dim=(1, 2, 3))

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        linear = self.linear_logit(ids, multi_hot)
        if self.embedding is None:
            return linear
        return linear + self.interaction_logit(self.embedding(ids, multi_hot))
