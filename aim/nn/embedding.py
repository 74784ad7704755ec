"""Field embeddings: one table for all fields (per-field offsets), multi-hot mean pooling.

``tables > 1`` gives function-wise embeddings (AIM's IFS): every value has one vector per
interaction function, stored side by side in the same table so one gather serves them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        self.sparse = False  # sparse gradients (set by the optimizer for large tables, aim/training/optim.py)
        offsets = torch.tensor([0, *vocab_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.randn(sum(vocab_sizes), tables * dim) * init_std)

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        at = ids.long() + self.offsets[: self.n_single]
        out = F.embedding(at, self.weight, sparse=self.sparse)  # [B, F, tables * dim]
        pooled = []
        for k, (mh_ids, mask) in enumerate(multi_hot):  # few fields, each one batched gather
            at = mh_ids.long() + self.offsets[self.n_single + k]
            rows = F.embedding(at, self.weight, sparse=self.sparse)  # [B, L, tables * dim]
            weights = mask.to(rows.dtype)
            pooled.append((rows * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0))
        if pooled:
            out = torch.cat([out, torch.stack(pooled, dim=1)], dim=1)
        return out.view(out.shape[0], out.shape[1], self.tables, self.dim)


class NarrowEmbedding(nn.Module):
    """Field embeddings that really store only the kept slots (AIM's EDS after search).

    ``keep[i, t, k]`` says whether field ``i`` keeps dimension ``k`` of its table ``t``. Field ``i``
    stores ``vocab_i × keep[i].sum()`` numbers, all fields in one flat parameter; the output is the
    same ``[B, n, tables, dim]`` as :class:`FieldEmbedding`, zero at dropped slots (the paper's
    ``Map``), so the interaction functions need no change.

    Only kept slots are gathered (one ``index_select`` for the single-valued fields, one per
    multi-hot field) and written slot-major into ``[n·tables·dim, B]``; the output is a permuted
    view of it, so the interactions' slot-major layout and the MLP's kept slots cost no copy.
    """

    def __init__(self, vocab_sizes: list[int], keep: torch.Tensor, n_multi_hot: int = 0, init_std: float = 1e-2):
        super().__init__()
        if keep.ndim != 3 or keep.shape[0] != len(vocab_sizes):
            raise ValueError(f"keep must be [fields, tables, dim], got {tuple(keep.shape)}")
        self.n_fields, self.n_single = len(vocab_sizes), len(vocab_sizes) - n_multi_hot
        self.tables, self.dim = keep.shape[1], keep.shape[2]
        keep = keep.bool()
        slots = keep.flatten(1).sum(1)  # kept numbers per value of each field
        sizes = torch.tensor(vocab_sizes, dtype=torch.long) * slots
        base = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
        local = (keep.flatten(1).cumsum(1) - 1).clamp(min=0)
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("stride", slots, persistent=False)
        self.register_buffer("base", base, persistent=False)
        # every kept slot (field-major): its place in [n·T·d], its field, and its address = offset + id·stride
        kept = torch.nonzero(keep.flatten()).flatten()
        field = kept // (self.tables * self.dim)
        self.register_buffer("kept_slots", kept, persistent=False)
        self.register_buffer("kept_field", field, persistent=False)
        self.register_buffer("kept_offset", base[field] + local.flatten()[kept], persistent=False)
        self.register_buffer("kept_stride", slots[field], persistent=False)
        bounds = torch.searchsorted(field, torch.arange(self.n_fields + 1)).tolist()
        self._ranges = [slice(bounds[i], bounds[i + 1]) for i in range(self.n_fields)]  # kept slots of field i
        self._single = slice(0, bounds[self.n_single])
        self.weight = nn.Parameter(torch.randn(int(sizes.sum())) * init_std)

    def _gather(self, ids: torch.Tensor, at: slice) -> torch.Tensor:
        """Values of kept slots ``at`` for ids ``[k, ...]`` (one id tensor per slot): ``[k, ...]``."""
        shape = (-1,) + (1,) * (ids.ndim - 1)
        address = ids.long() * self.kept_stride[at].view(shape) + self.kept_offset[at].view(shape)
        return self.weight.index_select(0, address.flatten()).view(address.shape)

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        batch = ids.shape[0]
        out = self.weight.new_zeros(self.n_fields * self.tables * self.dim, batch)  # slot-major
        if self.weight.numel():
            single = self._single
            out.index_copy_(
                0, self.kept_slots[single], self._gather(ids.t().index_select(0, self.kept_field[single]), single)
            )
            for k, (mh_ids, mask) in enumerate(multi_hot):
                at = self._ranges[self.n_single + k]
                rows = self._gather(mh_ids.unsqueeze(0).expand(at.stop - at.start, -1, -1), at)  # [k, B, L]
                weights = mask.to(rows.dtype)
                pooled = (rows * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)
                out.index_copy_(0, self.kept_slots[at], pooled)
        return out.view(self.n_fields, self.tables, self.dim, batch).permute(3, 0, 1, 2)
