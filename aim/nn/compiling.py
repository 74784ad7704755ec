"""``torch.compile`` helper: whether code is being traced."""

from __future__ import annotations

import torch


def is_compiling() -> bool:
    """True while TorchDynamo traces the calling code (eager-only fast paths step aside)."""
    return bool(torch.compiler.is_compiling())
