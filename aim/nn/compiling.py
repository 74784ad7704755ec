"""``torch.compile`` helpers: whether code is being traced, and compiling a model when asked."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def is_compiling() -> bool:
    """True while TorchDynamo traces the calling code (eager-only fast paths step aside)."""
    return bool(torch.compiler.is_compiling())
