"""Training pictures: validation AUC per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def auc_curve(histories: dict[str, list[dict]], path: Path) -> None:
    """Save validation AUC per epoch, one line per run (e.g. per stage or per model)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, history in histories.items():
        if history:
            ax.plot([h["epoch"] for h in history], [h["auc"] for h in history], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation AUC")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
