"""Pictures of a searched architecture: the order-2 |α| heat-map and the kept width per field."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aim.search.architecture import Architecture  # noqa: E402


def alpha_heatmap(arch: Architecture, path: Path) -> np.ndarray:
    """Save a field × field heat-map of Σ_functions |α| over kept pairs; returns the matrix."""
    n = len(arch.fields)
    position = {name: i for i, name in enumerate(arch.fields)}
    matrix = np.zeros((n, n))
    for inter in arch.interactions:
        if inter.order == 2:
            i, j = (position[f] for f in inter.fields)
            matrix[i, j] = matrix[j, i] = sum(abs(a) for a in inter.functions.values())
    fig, ax = plt.subplots(figsize=(1 + 0.45 * n, 0.8 + 0.45 * n))
    image = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(n), arch.fields, rotation=90)
    ax.set_yticks(range(n), arch.fields)
    ax.set_title("kept 2-order interactions: Σ|α|")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return matrix


def width_bars(arch: Architecture, path: Path) -> None:
    """Save a bar chart of the kept embedding width per field."""
    fig, ax = plt.subplots(figsize=(1 + 0.4 * len(arch.fields), 3))
    ax.bar(arch.fields, [arch.widths.get(f, 0) for f in arch.fields])
    ax.set_ylabel("kept embedding width")
    ax.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
