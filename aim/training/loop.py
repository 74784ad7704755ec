"""The training loop: Adam, BCE-with-logits, early stopping on validation AUC with restore-best.

Seeded and device-agnostic. ``extra_optimizer`` lets a search stage step its architecture optimizer
(GRDA) on the same mini-batch, after the same backward pass. Fast paths (see ``TrainSettings``):
fused Adam, lazy Adam on sparse gradients of large embedding tables, optional ``torch.compile``,
bf16 autocast on CUDA, and DDP when launched by ``torchrun``. Each epoch records its wall time
split into data loading (waiting for the next batch, host-to-device copy included) and compute.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from aim.data.arrays import PreparedData
from aim.memory import keep_freed_memory
from aim.training import distributed
from aim.training.batches import TimedBatches, iterate
from aim.training.metrics import evaluate
from aim.training.optim import Optimizers, use_sparse

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Knobs of one training run (from params.yaml's ``train``/``search`` and ``compute`` sections)."""

    epochs: int = 10
    batch_size: int = 2048
    lr: float = 1e-3
    patience: int = 2
    seed: int = 2026
    restore_best: bool = True  # search stages keep the last step: GRDA's threshold grows with steps
    sparse_embeddings: bool | None = None  # None = auto (large tables, see aim/training/optim.py)
    compile: bool = False  # torch.compile the model's forward (fused kernels; pays a compile first)
    autocast: str = "auto"  # auto = bf16 on CUDA, off on CPU | bf16 | off


@dataclass
class TrainResult:
    """What a run produced: per-epoch validation metrics and the restored best epoch."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_auc: float = float("-inf")
    seconds: float = 0.0


def autocast_context(device: torch.device, setting: str):
    """bf16 autocast where it pays: CUDA with bf16 support (``auto``) or when asked; else none."""
    wanted = setting == "bf16" or (
        setting == "auto" and device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if wanted else nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    keep_freed_memory()  # a step's large temporaries reuse freed pages (see aim/memory.py)
    device = distributed.local_device(device)
    model.to(device)
    params = parameters if parameters is not None else list(model.parameters())
    ddp = distributed.active()
    sparse = use_sparse(model, settings.sparse_embeddings, ddp, settings.compile)
    optimizer = Optimizers(model, params, settings.lr, sparse)
    runner: torch.nn.Module = model
    if ddp:
        ids = [device.index] if device.type == "cuda" else None
        runner = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    if settings.compile:
        runner = torch.compile(runner)
    shard = (distributed.rank(), distributed.world_size())
    train_split, valid_split = data.split("train"), data.split("valid")
    result, best_state, stale = TrainResult(), None, 0
    start = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        batches = iterate(
            train_split, settings.batch_size, device, shuffle=True, seed=settings.seed + epoch, shard=shard
        )
        total = -(-len(train_split) // settings.batch_size)
        epoch_start, rows = time.perf_counter(), 0
        progress = tqdm(
            total=total, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not distributed.is_main()
        )
        timed = TimedBatches(batches)
        for batch in timed:
            with autocast_context(device, settings.autocast):
                logits = runner(batch.ids, batch.multi_hot)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), batch.labels)
            optimizer.zero_grad()
            if extra_optimizer is not None:
                extra_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if extra_optimizer is not None:
                extra_optimizer.step()
            rows += len(batch.labels)
            progress.update()
        progress.close()
        _sync(device)
        train_seconds, data_seconds = time.perf_counter() - epoch_start, timed.waited
        distributed.broadcast_state(model)
        metrics = {"epoch": epoch + 1, **evaluate(model, valid_split, device)}
        metrics.update(
            train_seconds=train_seconds,
            data_seconds=data_seconds,
            compute_seconds=train_seconds - data_seconds,
            train_rows_per_s=rows * shard[1] / max(train_seconds, 1e-9),
        )
        result.history.append(metrics)
        log.info(
            "epoch %d: valid AUC %.4f logloss %.4f (%.1fs: data %.1fs, compute %.1fs)",
            epoch + 1,
            metrics["auc"],
            metrics["logloss"],
            train_seconds,
            data_seconds,
            train_seconds - data_seconds,
        )
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
    distributed.check_consistent(model)
    result.seconds = time.perf_counter() - start
    return result
