"""The DuckDB warehouse: vocabularies, quarantine and metadata as tables, events as views.

The encoded events live once, in the prepared parquet files (what Feast and DuckDB both read);
the warehouse exposes them as views ``train``, ``valid``, ``test`` and ``events`` whose paths are
relative to the project root, so the warehouse is a small file that still answers any SQL over
the whole data set. Open it with :func:`connect_warehouse` (it sets DuckDB's file search path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from aim.config import Params
from aim.data.encoding import Vocabulary
from aim.data.splits import SPLITS
from aim.errors import DataError


def _relative(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), root.resolve())
    except ValueError:
        return str(path.resolve())


def write_vocab(con: duckdb.DuckDBPyConnection, vocabs: list[Vocabulary], parquet_path: Path) -> None:
    """Collect every field's vocabulary into one ``vocab`` table and a parquet copy.

    Rows go in ordered by (field, id), so neither copy needs a sort (insertion order is kept).
    """
    vocabs = sorted(vocabs, key=lambda v: v.field.name)
    owner = pa.array(np.repeat(np.arange(len(vocabs)), [len(v.tokens) for v in vocabs]))
    table = pa.table(
        {
            "field": pa.array([v.field.name for v in vocabs], type=pa.string()).take(owner),
            "kind": pa.array([v.field.kind for v in vocabs], type=pa.string()).take(owner),
            "token": pa.concat_arrays([v.tokens.cast(pa.string()) for v in vocabs]),
            "id": np.concatenate([np.arange(1, v.size, dtype=np.int32) for v in vocabs]),
            "count": np.concatenate([v.counts.astype(np.int64) for v in vocabs]),
        }
    )
    con.execute("SET preserve_insertion_order = true")
    con.register("vocab_arrow", table)
    con.execute("CREATE OR REPLACE TABLE vocab AS SELECT * FROM vocab_arrow")
    con.unregister("vocab_arrow")
    con.execute(f"COPY vocab TO '{parquet_path}' (FORMAT parquet)")


def write_warehouse_tables(con: duckdb.DuckDBPyConnection, path: Path, meta: dict) -> None:
    """Start the warehouse file at ``path`` (attached as ``wh``): vocab, quarantine and meta tables.

    Needs :func:`write_vocab` first; :func:`finish_warehouse` adds the views and closes the file.
    """
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"ATTACH '{path}' AS wh")
    con.execute("CREATE TABLE wh.vocab AS SELECT * FROM vocab")
    con.execute("CREATE TABLE wh.quarantine AS SELECT * FROM quarantine ORDER BY source_file, line, row_index")
    con.execute("CREATE TABLE wh.meta AS SELECT ? AS meta_json", [json.dumps(meta)])
    con.execute("CHECKPOINT wh")


def finish_warehouse(con: duckdb.DuckDBPyConnection, prepared_dir: Path, root: Path) -> None:
    """Add views over the published parquet to the attached warehouse and close it."""
    con.execute(f"SET file_search_path = '{root}'")
    parquet = _relative(prepared_dir, root) + "/parquet"
    for split in SPLITS:
        con.execute(f"CREATE VIEW wh.{split} AS SELECT * FROM read_parquet('{parquet}/{split}.parquet')")
    union = " UNION ALL BY NAME ".join(
        f"SELECT *, '{split}' AS split FROM read_parquet('{parquet}/{split}.parquet')" for split in SPLITS
    )
    con.execute(f"CREATE VIEW wh.events AS {union}")
    con.execute("DETACH wh")


def connect_warehouse(params: Params, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with paths resolved against the project root."""
    path = params.path(params.data.warehouse)
    if not path.exists():
        raise DataError(f"warehouse {path} does not exist: run `aim prepare` (or `dvc repro prepare`) first")
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute(f"SET file_search_path = '{params.path('.')}'")
    return con
