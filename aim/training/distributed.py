"""Multi-process training on PyTorch DDP, launched by ``torchrun`` (or any launcher setting
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT``).

Backend: ``nccl`` when training on CUDA, ``gloo`` on CPU. Every rank holds the same model; each
takes its own share of every global mini-batch (:func:`aim.training.batches.iterate`), DDP
averages the gradients, so Adam and GRDA apply the same update on every rank and the
architecture parameters and GRDA state stay identical. Only rank 0 writes artefacts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def active() -> bool:
    """True inside a multi-process run (process group initialised, more than one rank)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes artefacts (rank 0, or the only process)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under DDP on CUDA each rank uses the GPU of its ``LOCAL_RANK``."""
    if active() and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


@contextmanager
def session(device_name: str = "auto") -> Iterator[None]:
    """Join the process group when launched with ``WORLD_SIZE > 1``; leave it on exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        yield
        return
    cuda = torch.cuda.is_available() and device_name != "cpu"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    log.info("rank %d of %d joined (%s)", dist.get_rank(), world, backend)
    try:
        yield
    finally:
        dist.barrier()
        dist.destroy_process_group()


def broadcast_state(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank before evaluation."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def check_consistent(module: torch.nn.Module) -> None:
    """Raise if any rank's parameters differ from rank 0's (a cheap fingerprint per rank)."""
    if not active():
        return
    with torch.no_grad():
        total = sum(p.detach().double().sum() + p.detach().double().abs().sum() for p in module.parameters())
        fingerprint = torch.as_tensor([float(total)], dtype=torch.float64)
        if next(module.parameters()).is_cuda:
            fingerprint = fingerprint.cuda()
        gathered = [torch.zeros_like(fingerprint) for _ in range(world_size())]
        dist.all_gather(gathered, fingerprint)
    values = torch.cat(gathered).cpu()
    if (values - values[0]).abs().max() > 1e-6 * max(1.0, float(values[0].abs())):
        raise RuntimeError(f"ranks hold different parameters after training: fingerprints {values.tolist()}")
