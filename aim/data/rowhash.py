"""DuckDB's row hash (``hash(t)`` of a staged row, see :func:`aim.data.reading.with_row_hash`) from codes.

DuckDB hashes a row (a struct) as its first column's hash, then folds in each next column's
hash ``b`` as ``a = ((a ^ (a >> 32)) * 0xd6e8feb86659fd93) ^ b`` (its ``CombineHashScalar``).
Here DuckDB hashes only each column's *distinct* values (typed as the staged column: same
value, same hash); numpy gathers them by code and folds row by row, vectorised. The result is
the same number DuckDB stores, so splits do not change with the reader; the tests check it
against DuckDB's own ``hash(t)``, which would catch a DuckDB version that hashes differently.
"""

from __future__ import annotations

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


def row_hashes(con: duckdb.DuckDBPyConnection, columns: list[tuple[CodedColumn, str]]) -> np.ndarray:
    """DuckDB's hash of each row of the struct of ``columns`` ((coded column, SQL type), in column order)."""
    first, sql_type = columns[0]
    hashes = np.take(value_hashes(con, first.distinct, sql_type), first.codes)
    scratch = np.empty_like(hashes)
    for column, sql_type in columns[1:]:
        np.right_shift(hashes, np.uint64(32), out=scratch)
        np.bitwise_xor(hashes, scratch, out=hashes)
        np.multiply(hashes, _COMBINE, out=hashes)
        np.take(value_hashes(con, column.distinct, sql_type), column.codes, out=scratch)
        np.bitwise_xor(hashes, scratch, out=hashes)
    return hashes
