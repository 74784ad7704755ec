"""The prepared folder as the features stage reads it: meta.json and the split parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from aim.data.arrays import PreparedData
from aim.data.splits import SPLITS
from aim.errors import DataError


def split_parquet(prepared: Path, split: str) -> Path:
    """The parquet file of one prepared split."""
    return prepared / "parquet" / f"{split}.parquet"


def read_prepared_meta(prepared: Path) -> dict:
    """``meta.json`` of the prepared folder, after checking every split's parquet is there and complete."""
    meta = PreparedData(prepared).meta
    for split in SPLITS:
        path = split_parquet(prepared, split)
        if not path.exists():
            raise DataError(f"{path} is missing: the prepared dataset is incomplete, rerun `aim prepare`")
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != meta["splits"][split]:
            raise DataError(f"{path} has {rows} rows but meta.json says {meta['splits'][split]}: rerun `aim prepare`")
    return meta


def sql_path(path: Path) -> str:
    """A path as a DuckDB string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def connect_events(prepared: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view ``events``: every split's rows plus ``split_code`` (0, 1, 2).

    Reads the parquet directly (the warehouse views point at the same files), so it never
    takes the warehouse's lock.
    """
    con = duckdb.connect()
    union = " UNION ALL BY NAME ".join(
        f"SELECT *, {code} AS split_code FROM read_parquet({sql_path(split_parquet(prepared, split))})"
        for code, split in enumerate(SPLITS)
    )
    con.execute(f"CREATE VIEW events AS {union}")
    return con
