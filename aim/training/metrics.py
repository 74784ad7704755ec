"""Evaluation with scikit-learn's AUC and log loss (no hand-written metrics)."""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score

from aim.data.arrays import SplitArrays
from aim.training.batches import iterate


@torch.no_grad()
def predict(model: torch.nn.Module, split: SplitArrays, device: torch.device, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities for every row of ``split``, in order."""
    model.eval()
    parts = [torch.sigmoid(model(b.ids, b.multi_hot)).float().cpu() for b in iterate(split, batch_size, device)]
    return torch.cat(parts).numpy() if parts else np.empty(0, dtype=np.float32)


def score_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    """AUC and log loss of click probabilities ``scores`` against 0/1 ``labels``."""
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "logloss": float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def evaluate(model: torch.nn.Module, split: SplitArrays, device: torch.device, batch_size: int = 8192) -> dict:
    """AUC, log loss and inference rows/s on ``split``."""
    start = time.perf_counter()
    scores = predict(model, split, device, batch_size)
    seconds = time.perf_counter() - start
    labels = np.asarray(split.labels)
    return {
        **score_metrics(labels, scores),
        "rows": int(len(labels)),
        "inference_rows_per_s": float(len(labels) / max(seconds, 1e-9)),
    }
