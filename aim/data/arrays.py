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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from aim.errors import DataError
from aim.jsonfile import read_json

META_FILE = "meta.json"


class _NpyAppender:
    """Writes an ``.npy`` file of known shape by appending rows in order (no memory map).

    Sequential writes keep the resident memory of the writer flat however large the file is.
    """

    def __init__(self, path: Path, dtype, shape: tuple[int, ...]):
        header = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset, self.dtype = header.offset, header.dtype
        del header
        self.handle = path.open("r+b")
        self.handle.seek(offset)

    def append(self, block: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(block, dtype=self.dtype).data)

    def close(self) -> None:
        self.handle.close()


class SplitWriter:
    """The arrays of one split, filled by appending blocks of rows in split order."""

    def __init__(self, folder: Path, rows: int, n_single: int, multi_hot: dict[str, int]):
        folder.mkdir(parents=True, exist_ok=True)
        self.rows, self.written = rows, 0
        self.fields = _NpyAppender(folder / "fields.npy", np.int32, (rows, n_single))
        self.labels = _NpyAppender(folder / "labels.npy", np.uint8, (rows,))
        self.timestamps = _NpyAppender(folder / "timestamps.npy", np.int64, (rows,))
        self.mh_ids = {n: _NpyAppender(folder / f"{n}.ids.npy", np.int32, (rows, w)) for n, w in multi_hot.items()}
        self.mh_mask = {n: _NpyAppender(folder / f"{n}.mask.npy", np.uint8, (rows, w)) for n, w in multi_hot.items()}

    def write(
        self,
        fields: np.ndarray,
        labels: np.ndarray,
        timestamps: np.ndarray,
        multi_hot: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Append the next block of rows."""
        self.fields.append(fields)
        self.labels.append(labels)
        self.timestamps.append(timestamps)
        for name, (ids, mask) in multi_hot.items():
            self.mh_ids[name].append(ids)
            self.mh_mask[name].append(mask)
        self.written += len(labels)

    def close(self) -> None:
        """Close every file; the split must be complete."""
        for appender in [self.fields, self.labels, self.timestamps, *self.mh_ids.values(), *self.mh_mask.values()]:
            appender.close()
        if self.written != self.rows:
            raise RuntimeError(f"split arrays got {self.written} rows, expected {self.rows}")


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
        self.meta = read_json(meta_path, DataError, "rerun `aim prepare`")

    @property
    def fields(self) -> list[dict]:
        """Field descriptions (name, kind, vocab_size, ...) in model order."""
        return self.meta["fields"]

    @property
    def vocab_sizes(self) -> list[int]:
        """Vocabulary size per field, in model order (what every model's embeddings take)."""
        return [f["vocab_size"] for f in self.fields]

    @property
    def n_multi_hot(self) -> int:
        """How many fields are multi-hot (they come last in model order)."""
        return sum(f["kind"] == "multi_hot" for f in self.fields)

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
