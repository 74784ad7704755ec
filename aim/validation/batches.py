"""Read a prepared split for validation: pyarrow batches of bounded size, as pandas frames.

Every column of the file is read, so a missing or an extra column shows up in the checks. Only
multi-hot columns are changed: GX's pandas expectations cannot look inside lists, so each list
becomes one id per row (see :func:`reduce_multi_hot`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aim.errors import DataError


def split_rows(path: Path) -> int:
    """Number of rows of a split's parquet file, from its footer (nothing else is read)."""
    return _open(path).metadata.num_rows


def _open(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise DataError(f"{path} is missing: the prepared data set is incomplete, rerun `aim prepare`")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable parquet file ({exc}): rerun `aim prepare`") from exc


def reduce_multi_hot(column: pa.Array) -> pa.Array:
    """One id per row of a list<int> column: the row's largest id, or its smallest when negative.

    A row has an id outside ``[0, vocab_size)`` exactly when its reduced id is outside that range,
    so a range expectation on the reduced column checks every id. Empty (and null) lists become
    null, which range expectations skip; a null id inside a list counts as -1 (out of range).
    Columns that are not lists of integers are returned unchanged, so their checks fail visibly.
    """
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_integer(kind.value_type):
        return column
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    reduced = np.zeros(len(column), dtype=np.int64)
    filled = lengths > 0
    if values.size:
        starts = (np.cumsum(lengths) - lengths)[filled]
        high = np.maximum.reduceat(values, starts)
        low = np.minimum.reduceat(values, starts)
        reduced[filled] = np.where(low < 0, low, high)
    return pa.array(reduced, mask=~filled)


def to_frame(batch: pa.RecordBatch | pa.Table, multi_hot: Collection[str]) -> pd.DataFrame:
    """A pandas frame of every column, multi-hot columns reduced by :func:`reduce_multi_hot`."""
    columns = [
        reduce_multi_hot(batch.column(i)) if name in multi_hot else batch.column(i)
        for i, name in enumerate(batch.schema.names)
    ]
    return pa.table(columns, names=batch.schema.names).to_pandas()


def iter_frames(path: Path, chunk_rows: int, multi_hot: Collection[str]) -> Iterator[pd.DataFrame]:
    """The split at ``path`` as frames of at most ``chunk_rows`` rows (one frame if it is smaller).

    Memory stays bounded by one chunk however large the file is. An empty file gives one empty
    frame with the file's columns, so the row-count expectation reports it.
    """
    handle = _open(path)
    if handle.metadata.num_rows == 0:
        yield to_frame(handle.schema_arrow.empty_table(), multi_hot)
        return
    for batch in handle.iter_batches(batch_size=chunk_rows):
        yield to_frame(batch, multi_hot)


def positive_share(path: Path, chunk_rows: int) -> float | None:
    """Share of rows with ``label == 1`` in a split (label column only, streamed).

    None when the file has no ``label`` column or no rows: the caller then has no reference rate.
    """
    handle = _open(path)
    if "label" not in handle.schema_arrow.names or handle.metadata.num_rows == 0:
        return None
    positives = 0
    for batch in handle.iter_batches(batch_size=chunk_rows, columns=["label"]):
        positives += int(pc.sum(pc.equal(batch.column(0), 1)).as_py() or 0)
    return positives / handle.metadata.num_rows
