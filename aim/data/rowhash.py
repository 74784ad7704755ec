"""DuckDB's row hash (``hash(t)`` of a staged row, see :func:`aim.data.reading.with_row_hash`) from codes.

DuckDB hashes a row (a struct) as its first column's hash, then folds in each next column's
hash ``b`` as ``a = ((a ^ (a >> 32)) * 0xd6e8feb86659fd93) ^ b`` (its ``CombineHashScalar``).
Here DuckDB hashes only each column's *distinct* values (typed as the staged column: same
value, same hash); numpy gathers them by code and folds row by row, vectorised. The result is
the same number DuckDB stores, so splits do not change with the reader; the tests check it
against DuckDB's own ``hash(t)``, which would catch a DuckDB version that hashes differently.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pyarrow as pa

from aim.data.schema import CodedColumn

_COMBINE = np.uint64(0xD6E8FEB86659FD93)


def value_hashes(con: duckdb.DuckDBPyConnection, values: pa.Array, sql_type: str) -> np.ndarray:
    """DuckDB's hash of each value (cast to ``sql_type``), in order."""
    con.execute("SET preserve_insertion_order = true")  # results in row order
    got = con.from_arrow(pa.table({"v": values})).project(f"hash(CAST(v AS {sql_type})) AS h").fetchnumpy()
    return np.asarray(got["h"], dtype=np.uint64)


_BLOCK_ROWS = 1 << 16  # rows folded at a time: the block's hashes stay in cache across all columns


def row_hashes(con: duckdb.DuckDBPyConnection, columns: list[tuple[CodedColumn, str]], threads: int = 1) -> np.ndarray:
    """DuckDB's hash of each row of the struct of ``columns`` ((coded column, SQL type), in column order).

    Rows are folded in cache-sized blocks, blocks side by side on ``threads`` threads (numpy
    releases the GIL).
    """
    lookups = [(value_hashes(con, column.distinct, sql_type), column.codes) for column, sql_type in columns]
    hashes = np.empty(len(columns[0][0].codes), dtype=np.uint64)

    def fold(start: int) -> None:
        stop = min(start + _BLOCK_ROWS, len(hashes))
        block, scratch = hashes[start:stop], np.empty(stop - start, dtype=np.uint64)
        first_hashes, first_codes = lookups[0]
        np.take(first_hashes, first_codes[start:stop], out=block, mode="clip")  # codes are in range
        for value_hash, codes in lookups[1:]:
            np.right_shift(block, np.uint64(32), out=scratch)
            np.bitwise_xor(block, scratch, out=block)
            np.multiply(block, _COMBINE, out=block)
            np.take(value_hash, codes[start:stop], out=scratch, mode="clip")
            np.bitwise_xor(block, scratch, out=block)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(fold, range(0, len(hashes), _BLOCK_ROWS)))
    return hashes
