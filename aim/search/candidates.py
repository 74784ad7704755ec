"""Candidate interactions for the search, as index tensors ``[Q, p]`` of field positions.

Order 2 is every pair. Order p > 2 follows AIM's Algorithm 1: the top-k selected order-(p-1)
interactions (ranked by |α|, k = ⌊n/2⌋ in the paper) times every single field not already in
them, deduplicated — O(k·n) candidates instead of C(n, p). All tensor ops, no Python loops.
"""

from __future__ import annotations

import torch


def all_pairs(n_fields: int) -> torch.Tensor:
    """Every 2-order interaction ``(i, j)``, i < j, as a ``[n(n-1)/2, 2]`` long tensor."""
    return torch.combinations(torch.arange(n_fields), r=2)


def default_top_k(n_fields: int) -> int:
    """The paper's pool width: ⌊n/2⌋ (at least 1)."""
    return max(1, n_fields // 2)


def next_order_pool(selected: torch.Tensor, alpha: torch.Tensor, n_fields: int, k: int) -> torch.Tensor:
    """Order-(p+1) candidates from selected order-p interactions ``[Q, p]`` and their gates ``[Q]``.

    Takes the ``k`` interactions with the largest |α| (ties by position), appends each field not
    already in the interaction, sorts the fields of each candidate and removes duplicates.
    Returns a ``[Q', p+1]`` long tensor in lexicographic order (empty if nothing qualifies).
    """
    if selected.ndim != 2 or selected.shape[0] != alpha.shape[0]:
        raise ValueError(f"selected {tuple(selected.shape)} and alpha {tuple(alpha.shape)} do not match")
    p = selected.shape[1]
    keep = alpha.abs() > 0
    selected, alpha = selected[keep], alpha[keep]
    if selected.shape[0] == 0:
        return torch.empty(0, p + 1, dtype=torch.long)
    order = torch.sort(alpha.abs(), descending=True, stable=True).indices[:k]
    top = selected[order].long()
    fields = torch.arange(n_fields)
    grown = torch.cat([top.repeat_interleave(n_fields, dim=0), fields.repeat(top.shape[0]).unsqueeze(1)], dim=1)
    fresh = (grown[:, :p] != grown[:, p:]).all(dim=1)
    candidates = torch.sort(grown[fresh], dim=1).values
    return torch.unique(candidates, dim=0)
