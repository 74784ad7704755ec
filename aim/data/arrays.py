"""Model-ready arrays: one folder per split of ``.npy`` files opened as memory maps.

Why memory-mapped ``.npy`` rather than Arrow batches: training needs fixed-width integer ids,
and a row-major ``int32 [rows, fields]`` matrix makes every mini-batch one contiguous slice
(or one gather) that ``torch.from_numpy`` wraps without a copy or a decode step. The operating
system's page cache keeps hot pages in memory and drops cold ones, so a 10M-row split streams
in batches with bounded resident memory, and no Python object per row ever exists.

Files per split: ``fields.npy`` int32 [n, F] (categorical and bucketed numeric fields, in
schema order), ``labels.npy`` uint8 [n], ``timestamps.npy`` int64 [n] and, per multi-hot field
``name``, ``name.ids.npy`` int32 [n, L] (padded with 0) and ``name.mask.npy`` uint8 [n, L]
(1 = a real value; the mean-pooling weights are mask / mask.sum(1)).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from aim.errors import DataError

META_FILE = "meta.json"


class SplitWriter:
    """Pre-allocated memory-mapped arrays for one split, filled by scattered row positions."""

    def __init__(self, folder: Path, rows: int, n_single: int, multi_hot: dict[str, int]):
        folder.mkdir(parents=True, exist_ok=True)
        self.fields = open_memmap(folder / "fields.npy", mode="w+", dtype=np.int32, shape=(rows, n_single))
        self.labels = open_memmap(folder / "labels.npy", mode="w+", dtype=np.uint8, shape=(rows,))
        self.timestamps = open_memmap(folder / "timestamps.npy", mode="w+", dtype=np.int64, shape=(rows,))
        self.mh_ids = {
            name: open_memmap(folder / f"{name}.ids.npy", mode="w+", dtype=np.int32, shape=(rows, width))
            for name, width in multi_hot.items()
        }
        self.mh_mask = {
            name: open_memmap(folder / f"{name}.mask.npy", mode="w+", dtype=np.uint8, shape=(rows, width))
            for name, width in multi_hot.items()
        }

    def write(
        self,
        pos: np.ndarray,
        fields: np.ndarray,
        labels: np.ndarray,
        timestamps: np.ndarray,
        multi_hot: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Write a block of rows at their positions inside the split."""
        self.fields[pos] = fields
        self.labels[pos] = labels
        self.timestamps[pos] = timestamps
        for name, (ids, mask) in multi_hot.items():
            self.mh_ids[name][pos] = ids
            self.mh_mask[name][pos] = mask

    def close(self) -> None:
        """Flush every array to disk."""
        for arr in [self.fields, self.labels, self.timestamps, *self.mh_ids.values(), *self.mh_mask.values()]:
            arr.flush()


def pad_lists(offsets: np.ndarray, values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack a flattened list column (Arrow offsets + values) into [rows, width] ids and mask.

    Lists longer than ``width`` are truncated; returns (ids, mask, truncated row count).
    """
    rows = len(offsets) - 1
    lengths = np.diff(offsets)
    row = np.repeat(np.arange(rows), lengths)
    col = np.arange(len(values)) - np.repeat(offsets[:-1], lengths)
    keep = col < width
    ids = np.zeros((rows, width), dtype=np.int32)
    mask = np.zeros((rows, width), dtype=np.uint8)
    ids[row[keep], col[keep]] = values[keep]
    mask[row[keep], col[keep]] = 1
    return ids, mask, int((lengths > width).sum())


@dataclass
class SplitArrays:
    """Read-only memory-mapped arrays of one split."""

    fields: np.ndarray
    labels: np.ndarray
    timestamps: np.ndarray
    multi_hot: dict[str, tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray | slice) -> dict[str, np.ndarray]:
        """Rows ``index`` as a dict of in-memory arrays (a batch)."""
        batch = {"fields": np.asarray(self.fields[index]), "labels": np.asarray(self.labels[index])}
        for name, (ids, mask) in self.multi_hot.items():
            batch[f"{name}.ids"] = np.asarray(ids[index])
            batch[f"{name}.mask"] = np.asarray(mask[index])
        return batch

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Mini-batches in file order, or shuffled (sorted gathers inside each batch)."""
        n = len(self)
        if not shuffle:
            for start in range(0, n, batch_size):
                yield self.take(slice(start, min(start + batch_size, n)))
            return
        order = np.random.default_rng(seed).permutation(n)
        for start in range(0, n, batch_size):
            yield self.take(np.sort(order[start : start + batch_size]))


class PreparedData:
    """A prepared dataset folder: metadata plus memory-mapped splits."""

    def __init__(self, folder: Path):
        meta_path = folder / META_FILE
        if not meta_path.exists():
            raise DataError(f"{folder} holds no prepared dataset ({META_FILE} missing): run `aim prepare`")
        self.folder = folder
        self.meta = json.loads(meta_path.read_text())

    @property
    def fields(self) -> list[dict]:
        """Field descriptions (name, kind, vocab_size, ...) in model order."""
        return self.meta["fields"]

    def split(self, name: str) -> SplitArrays:
        """Open split ``name`` (train, valid or test) read-only."""
        folder = self.folder / "arrays" / name
        if not folder.exists():
            raise DataError(f"{folder} is missing: the prepared dataset is incomplete, rerun `aim prepare`")

        def load(file: str) -> np.ndarray:
            return np.load(folder / file, mmap_mode="r")

        multi_hot = {
            f["name"]: (load(f"{f['name']}.ids.npy"), load(f"{f['name']}.mask.npy"))
            for f in self.fields
            if f["kind"] == "multi_hot"
        }
        return SplitArrays(load("fields.npy"), load("labels.npy"), load("timestamps.npy"), multi_hot)
