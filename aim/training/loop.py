"""The training loop: Adam, BCE-with-logits, early stopping on validation AUC with restore-best.

Seeded and device-agnostic. ``extra_step`` lets a search stage step its architecture optimizer
(GRDA) on the same mini-batch, after the same backward pass.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from aim.data.arrays import PreparedData
from aim.training.batches import iterate
from aim.training.metrics import evaluate

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Knobs of one training run (from params.yaml's ``train`` section)."""

    epochs: int = 10
    batch_size: int = 2048
    lr: float = 1e-3
    patience: int = 2
    seed: int = 2026
    restore_best: bool = True  # search stages keep the last step: GRDA's threshold grows with steps


@dataclass
class TrainResult:
    """What a run produced: per-epoch validation metrics and the restored best epoch."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_auc: float = float("-inf")
    seconds: float = 0.0


def train(
    model: torch.nn.Module,
    data: PreparedData,
    settings: TrainSettings,
    device: torch.device,
    parameters: list[torch.nn.Parameter] | None = None,
    extra_optimizer: torch.optim.Optimizer | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` on the train split; keep the weights of the best validation AUC (or the last
    ones when ``settings.restore_best`` is off)."""
    torch.manual_seed(settings.seed)
    model.to(device)
    params = parameters if parameters is not None else list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    train_split, valid_split = data.split("train"), data.split("valid")
    result, best_state, stale = TrainResult(), None, 0
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        batches = iterate(train_split, settings.batch_size, device, shuffle=True, seed=settings.seed + epoch)
        total = -(-len(train_split) // settings.batch_size)
        for batch in tqdm(batches, total=total, desc=f"epoch {epoch + 1}", unit="batch", leave=False):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch.ids, batch.multi_hot), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            if extra_optimizer is not None:
                extra_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if extra_optimizer is not None:
                extra_optimizer.step()
        metrics = {"epoch": epoch + 1, **evaluate(model, valid_split, device)}
        result.history.append(metrics)
        log.info("epoch %d: valid AUC %.4f logloss %.4f", epoch + 1, metrics["auc"], metrics["logloss"])
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if metrics["auc"] > result.best_auc:
            result.best_auc, result.best_epoch, stale = metrics["auc"], epoch + 1, 0
            if settings.restore_best:  # no copy when the last step is kept anyway
                best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale > settings.patience:
                log.info("early stop: no better validation AUC for %d epochs", stale)
                break
    if best_state is not None and settings.restore_best:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
