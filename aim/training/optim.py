"""The weights' optimizer: Adam, fused into one kernel, and lazy Adam for large embedding tables.

A dense Adam step reads and writes every row of every embedding table on every batch, while a
batch touches a few thousand rows. With sparse embedding gradients (``FieldEmbedding.sparse``)
the tables go to :class:`torch.optim.SparseAdam`, which updates only the rows in the batch; the
rest of the weights go to ``Adam(fused=True)``. Measured on the 2-core reference CPU with 784k
embedding rows (bench/perf.py), fused dense Adam was faster than SparseAdam's coalesce and
masked updates (40 vs 190-570 ms a step), so ``auto`` keeps dense Adam below ``SPARSE_MIN_ROWS``
rows; sparse is for tables far larger than memory bandwidth allows to sweep every step.
"""

from __future__ import annotations

import torch

from aim.nn.embedding import FieldEmbedding

SPARSE_MIN_ROWS = 50_000_000


def use_sparse(model: torch.nn.Module, setting: bool | None, distributed: bool = False) -> bool:
    """Resolve ``sparse_embeddings`` (None = auto); DDP always takes dense gradients."""
    if distributed:
        return False
    if setting is not None:
        return setting
    rows = sum(m.weight.shape[0] for m in model.modules() if isinstance(m, FieldEmbedding))
    return rows >= SPARSE_MIN_ROWS


class Optimizers:
    """Adam for dense weights plus SparseAdam for sparse embedding tables, stepped together."""

    def __init__(self, model: torch.nn.Module, params: list[torch.nn.Parameter], lr: float, sparse: bool):
        tables = set()
        for module in model.modules():
            if isinstance(module, FieldEmbedding):
                module.sparse = sparse
                if sparse:
                    tables.add(id(module.weight))
        dense = [p for p in params if id(p) not in tables]
        lazy = [p for p in params if id(p) in tables]
        fused = bool(dense) and all(p.device.type in ("cpu", "cuda") for p in dense)
        self.all = [torch.optim.Adam(dense, lr=lr, fused=fused)] if dense else []
        if lazy:
            self.all.append(torch.optim.SparseAdam(lazy, lr=lr))

    def zero_grad(self) -> None:
        for optimizer in self.all:
            optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        for optimizer in self.all:
            optimizer.step()
