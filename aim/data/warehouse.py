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


VOCAB_SCHEMA = pa.schema(
    [
        pa.field("field", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
        pa.field("id", pa.int32(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)


def vocab_table(vocabs: list[Vocabulary]) -> pa.Table:
    """Every field's vocabulary as one table, in (field, id) order: field, kind, token, id, train count."""
    vocabs = sorted(vocabs, key=lambda v: v.field.name)
    owner = pa.array(np.repeat(np.arange(len(vocabs)), [len(v.tokens) for v in vocabs]))
    columns = [
        pa.array([v.field.name for v in vocabs], type=pa.string()).take(owner),
        pa.array([v.field.kind for v in vocabs], type=pa.string()).take(owner),
        pa.concat_arrays([v.tokens.cast(pa.string()) for v in vocabs]),
        pa.array(np.concatenate([np.arange(1, v.size, dtype=np.int32) for v in vocabs])),
        pa.array(np.concatenate([v.counts.astype(np.int64) for v in vocabs])),
    ]
    return pa.Table.from_arrays(columns, schema=VOCAB_SCHEMA)


def write_warehouse_tables(con: duckdb.DuckDBPyConnection, path: Path, meta: dict, vocab: pa.Table) -> None:
    """Start the warehouse file at ``path`` (attached as ``wh``): vocab, quarantine and meta tables.

    ``vocab`` comes in (field, id) order and keeps it (no sort); :func:`finish_warehouse` adds
    the views and closes the file.
    """
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"ATTACH '{path}' AS wh")
    con.register("vocab_arrow", vocab)
    con.execute("CREATE TABLE wh.vocab AS SELECT * FROM vocab_arrow")
    con.unregister("vocab_arrow")
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
