"""Field embeddings: one table for all fields (per-field offsets), multi-hot mean pooling.

``tables > 1`` gives function-wise embeddings (AIM's IFS): every value has one vector per
interaction function, stored side by side in the same table so one gather serves them all.
"""

from __future__ import annotations

import torch
from torch import nn


class FieldEmbedding(nn.Module):
    """Embed ``n`` fields: single-valued first (ids ``[B, F]``), then multi-hot (ids and masks ``[B, L]``).

    Returns ``[B, n, tables, dim]``. Field ``i``'s id ``v`` is row ``offset[i] + v`` of the table.
    """

    def __init__(self, vocab_sizes: list[int], dim: int, n_multi_hot: int = 0, tables: int = 1, init_std: float = 1e-2):
        super().__init__()
        if n_multi_hot > len(vocab_sizes):
            raise ValueError("more multi-hot fields than fields")
        self.n_single = len(vocab_sizes) - n_multi_hot
        self.dim, self.tables = dim, tables
        offsets = torch.tensor([0, *vocab_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.randn(sum(vocab_sizes), tables * dim) * init_std)

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        out = self.weight[ids.long() + self.offsets[: self.n_single]]  # [B, F, tables * dim]
        pooled = []
        for k, (mh_ids, mask) in enumerate(multi_hot):  # few fields, each one batched gather
            rows = self.weight[mh_ids.long() + self.offsets[self.n_single + k]]  # [B, L, tables * dim]
            weights = mask.to(rows.dtype)
            pooled.append((rows * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0))
        if pooled:
            out = torch.cat([out, torch.stack(pooled, dim=1)], dim=1)
        return out.view(out.shape[0], out.shape[1], self.tables, self.dim)
