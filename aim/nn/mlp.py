"""The MLP block: Linear -> BatchNorm -> ReLU (-> Dropout) per hidden layer, then a linear output."""

from __future__ import annotations

from torch import nn


def mlp(
    inputs: int, hidden: list[int], outputs: int = 1, dropout: float = 0.0, batch_norm: bool = True
) -> nn.Sequential:
    """A feed-forward block; ``hidden=[]`` gives a single linear layer."""
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)
