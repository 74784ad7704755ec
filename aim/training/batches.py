"""Mini-batches of the prepared arrays as tensors on the training device."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from aim.data.arrays import SplitArrays


@dataclass
class Batch:
    """One mini-batch: single-field ids, multi-hot (ids, mask) pairs and labels."""

    ids: torch.Tensor
    multi_hot: list[tuple[torch.Tensor, torch.Tensor]]
    labels: torch.Tensor


class TimedBatches:
    """Iterate ``batches`` and add up the seconds spent waiting for each next one (``waited``)."""

    def __init__(self, batches: Iterator[Batch]):
        self.batches, self.waited = batches, 0.0

    def __iter__(self) -> Iterator[Batch]:
        while True:
            start = time.perf_counter()
            batch = next(self.batches, None)
            self.waited += time.perf_counter() - start
            if batch is None:
                return
            yield batch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def iterate(
    split: SplitArrays,
    batch_size: int,
    device: torch.device,
    shuffle: bool = False,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Batch]:
    """Yield :class:`Batch` objects; host arrays are pinned and copied asynchronously on GPU.

    ``shard=(rank, world)`` is the distributed sampler: every rank draws the same global batches
    (same seeded order) and keeps rows ``rank::world`` of each, so the ranks together see exactly
    the single-process batches. A global batch too small to give every rank a row is skipped.
    """
    pin = device.type == "cuda"
    names = list(split.multi_hot)
    rank, world = shard
    for raw in split.batches(batch_size, shuffle=shuffle, seed=seed):
        if world > 1:
            if len(raw["labels"]) < world:
                continue
            raw = {key: value[rank::world] for key, value in raw.items()}

        def move(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(np.require(array, requirements=["C", "W"]))  # copies read-only views
            return tensor.pin_memory().to(device, non_blocking=True) if pin else tensor.to(device)

        yield Batch(
            ids=move(raw["fields"]),
            multi_hot=[(move(raw[f"{n}.ids"]), move(raw[f"{n}.mask"])) for n in names],
            labels=move(raw["labels"]).float(),
        )
