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

    ``keep[i, t, k]`` says whether field ``i`` keeps dimension ``k`` of its table ``t``; a value of
    field ``i`` stores ``keep[i].sum()`` numbers. Fields that keep the same number of slots share one
    :class:`FieldEmbedding` of that width (a width group), so a batch costs one row gather per
    group, as a plain embedding does, and large groups get lazy row-wise Adam like any table.

    :meth:`packed` returns the kept numbers side by side, ``[B, W]`` in group order (``W`` =
    ``keep.sum()``; ``packed_slots`` says where each column sits in ``[n·T·d]``): what an MLP
    reads, with no copy for a single group. :meth:`forward` returns the same ``[B, n, T, d]`` as
    :class:`FieldEmbedding`, zero at dropped slots (the paper's ``Map``), for the interaction
    functions: a permuted view of a slot-major buffer, which is the interactions' own layout.
    """

    def __init__(self, vocab_sizes: list[int], keep: torch.Tensor, n_multi_hot: int = 0, init_std: float = 1e-2):
        super().__init__()
        if keep.ndim != 3 or keep.shape[0] != len(vocab_sizes):
            raise ValueError(f"keep must be [fields, tables, dim], got {tuple(keep.shape)}")
        self.n_fields, self.n_single = len(vocab_sizes), len(vocab_sizes) - n_multi_hot
        self.tables, self.dim = keep.shape[1], keep.shape[2]
        keep = keep.bool()
        widths = keep.flatten(1).sum(1).tolist()  # kept numbers per value of each field
        slots = [torch.nonzero(keep[i].flatten()).flatten() + i * self.tables * self.dim for i in range(self.n_fields)]
        self.groups = nn.ModuleList()
        self.members: list[tuple[list[int], list[int]]] = []  # per group: single fields, multi-hot positions
        packed: list[torch.Tensor] = []
        for width in sorted({w for w in widths if w}):
            members = [i for i, w in enumerate(widths) if w == width]
            single = [i for i in members if i < self.n_single]
            multi = [i - self.n_single for i in members if i >= self.n_single]
            table = FieldEmbedding([vocab_sizes[i] for i in members], width, len(multi), init_std=init_std)
            self.groups.append(table)
            self.members.append((single, multi))
            self.register_buffer(f"_columns{len(self.groups) - 1}", torch.tensor(single, dtype=torch.long), False)
            packed += [slots[i] for i in single] + [slots[self.n_single + k] for k in multi]
        self.width = sum(widths)
        self.register_buffer("packed_slots", torch.cat(packed) if packed else torch.zeros(0, dtype=torch.long), False)

    def packed(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        """The kept numbers of every field, ``[B, W]`` in group order (see ``packed_slots``)."""
        parts = []
        for g, (table, (single, multi)) in enumerate(zip(self.groups, self.members, strict=True)):
            columns = ids if len(single) == ids.shape[1] else ids.index_select(1, getattr(self, f"_columns{g}"))
            parts.append(table(columns, [multi_hot[k] for k in multi]).flatten(1))
        if not parts:
            return ids.new_zeros((ids.shape[0], 0), dtype=torch.float32)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def expand(self, packed: torch.Tensor) -> torch.Tensor:
        """``[B, n, T, d]`` with the packed numbers at their slots and zero elsewhere."""
        batch = packed.shape[0]
        out = packed.new_zeros(self.n_fields * self.tables * self.dim, batch)  # slot-major
        out = out.index_copy(0, self.packed_slots, packed.t())
        return out.view(self.n_fields, self.tables, self.dim, batch).permute(3, 0, 1, 2)

    def forward(self, ids: torch.Tensor, multi_hot: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> torch.Tensor:
        return self.expand(self.packed(ids, multi_hot))
