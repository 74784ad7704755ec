"""The prepare step: stage a source, split it, build vocabularies, write model-ready data.

How it stays fast and memory-bounded, with no Python object per row and no join in SQL:

1. The source is parsed once by DuckDB's parallel reader into table ``raw`` (it spills to disk
   past ``data.duckdb_memory_limit``); malformed lines go to the quarantine table.
2. The split (:mod:`aim.data.splits`): DuckDB sorts the rows' content keys; numpy cuts them into
   train, valid and test and keeps ``rows``, the rowids of the three splits in output order.
3. From here on ``raw`` is only read, one column at a time in rowid order, so DuckDB's buffer
   pool shrinks to 512 MiB (the rest of ``raw`` waits in the spill folder) and the memory goes to
   the encoded columns. While DuckDB reads the next column, worker threads encode the ones read
   (Arrow compute and numpy release the GIL): dictionary-encode, count on training rows with
   ``np.bincount``, build the vocabulary and an id per distinct value, map rows to ids and
   gather them into output order (:mod:`aim.data.encoding`). Only the ids are kept, in the
   narrowest integer type, and ``raw`` is dropped.
4. Arrays and parquet of every split are written sequentially from those columns, files side by
   side in threads, while DuckDB writes the vocabulary, the quarantine and the warehouse tables.

Everything is built in temp locations and published atomically at the end (see
:mod:`aim.data.atomic`): the warehouse file, and the prepared folder with ``meta.json``,
``summary.json``, ``quarantine.csv``, ``vocab.parquet``, ``arrays/<split>/`` and
``parquet/<split>.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from aim.config import Params
from aim.data.arrays import META_FILE, SplitWriter, pad_lists
from aim.data.atomic import clean_stale, publish, temp_path
from aim.data.encoding import (
    Vocabulary,
    build_vocabulary,
    dictionary_codes,
    distinct_tokens,
    id_dtype,
    quantile_bounds,
    value_sql,
)
from aim.data.quarantine import create_quarantine_table, quarantine_count, quarantine_rows, write_quarantine_csv
from aim.data.schema import StagedSource
from aim.data.sources import q, stage_source, worker_threads
from aim.data.splits import SPLITS, SplitAssignment, assign_splits
from aim.data.warehouse import finish_warehouse, vocab_table, write_warehouse_tables
from aim.errors import DataError

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
QUARANTINE_FILE = "quarantine.csv"
FORMAT_VERSION = 1


@dataclass
class SplitStats:
    """Rows, positives and OOV counts of one split (for ``summary.json``)."""

    n_single: int
    rows: int = 0
    positives: int = 0
    oov: np.ndarray = field(init=False)
    mh_oov: dict[str, int] = field(default_factory=dict)
    mh_tokens: dict[str, int] = field(default_factory=dict)
    mh_truncated: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.oov = np.zeros(self.n_single, dtype=np.int64)

    def add(self, name: str, counter: str, value: int) -> None:
        """Accumulate a per-multi-hot-field counter."""
        bucket = getattr(self, counter)
        bucket[name] = bucket.get(name, 0) + int(value)


_READ_MEMORY = 512 * 2**20  # DuckDB's memory limit once raw is only read column by column
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _size_bytes(text: str) -> int | None:
    """Bytes of a DuckDB size such as '2GB' or '512 MiB' (None if it is not one)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _read_memory_limit(con: duckdb.DuckDBPyConnection, params: Params) -> None:
    """Shrink DuckDB's buffer pool to ``_READ_MEMORY`` (if the configured limit is larger).

    Once staged and split, raw is only streamed out one column at a time, which needs little
    memory: blocks past the smaller limit wait in the spill folder, and the memory goes to the
    encoded columns instead (at 10M rows this is what keeps prepare's peak under 4 GB).
    """
    configured = _size_bytes(params.data.duckdb_memory_limit)
    if configured is not None and configured > _READ_MEMORY:
        con.execute(f"SET memory_limit = '{_READ_MEMORY // 2**20}MiB'")


def _spill_dir(build_db: Path) -> Path:
    return build_db.with_name(build_db.name.replace(".tmp-", ".spill-"))


def _connect(spill: Path, params: Params) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to ``spill`` past the configured memory limit."""
    con = duckdb.connect()
    con.execute(f"SET threads = {worker_threads(params)}")
    con.execute(f"SET memory_limit = '{params.data.duckdb_memory_limit}'")
    con.execute(f"SET temp_directory = '{spill}'")
    # Rows are ordered by content (see splits.py), so load order need not be kept: this lets
    # the parallel CSV reader append without re-sequencing, the largest single speed-up.
    con.execute("SET preserve_insertion_order = false")
    return con


def _file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """Cheap content fingerprint: size plus the first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(size - chunk, chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()


def data_version(params: Params, staged: StagedSource) -> str:
    """A short hash of the prepare configuration and the input files' contents."""
    config = json.dumps(params.data.model_dump(mode="json"), sort_keys=True)
    digest = hashlib.sha256(config.encode() + str(params.seed).encode())
    for path in staged.inputs:
        digest.update(path.name.encode() + _file_digest(path).encode())
    return digest.hexdigest()[:16]


def _post_check(con: duckdb.DuckDBPyConnection, staged: StagedSource) -> np.ndarray:
    """Quarantine rows failing the source's row checks; returns the bad-row mask by rowid."""
    bad = np.zeros(staged.rows_loaded, dtype=bool)
    if staged.coded is not None and staged.checks:  # a bug: such sources have no raw table to check
        raise RuntimeError(f"source {staged.name} staged as codes cannot have post-load checks")
    for check in staged.checks:
        reason = "'" + check.reason.replace("'", "''") + "'"
        quarantine_rows(con, "raw", str(staged.inputs[0]), check.bad_sql, reason, staged.line_sql)
        rows = con.execute(f"SELECT rowid FROM raw WHERE {check.bad_sql}").fetchnumpy()["rowid"]
        bad[np.asarray(rows, dtype=np.int64)] = True
    return bad


def _check_quarantine_share(con, staged: StagedSource, params: Params, fallback_csv: Path) -> int:
    """Log the quarantined share; stop (writing the quarantine out) when it is too large."""
    quarantined = quarantine_count(con)
    (unread_lines,) = con.execute("SELECT count(*) FROM quarantine WHERE row_index IS NULL").fetchall()[0]
    total = staged.rows_loaded + int(unread_lines)
    share = quarantined / max(total, 1)
    if quarantined:
        log.warning("quarantined %d of %d input rows (%.2f%%)", quarantined, total, 100 * share)
    if share > params.data.max_quarantine_share:
        fallback_csv.parent.mkdir(parents=True, exist_ok=True)
        write_quarantine_csv(con, fallback_csv)
        raise DataError(
            f"{quarantined} of {total} rows ({100 * share:.1f}%) could not be used, more than "
            f"data.max_quarantine_share = {params.data.max_quarantine_share:g}; see {fallback_csv} "
            "for each line and reason, fix the input (or raise the limit) and rerun"
        )
    return quarantined


def _column(con: duckdb.DuckDBPyConnection, sql: str, rows: int) -> pa.ChunkedArray:
    """One column of ``raw`` in rowid order, as Arrow."""
    column = con.sql(f"SELECT {sql} AS v FROM raw").to_arrow_table().column("v")
    if len(column) != rows:  # a bug, not bad data
        raise RuntimeError(f"read {len(column)} rows of raw, expected {rows}")
    return column


@dataclass
class EncodedField:
    """A field's vocabulary and ids of every usable row, in output order (``SplitAssignment.rows``)."""

    vocab: Vocabulary
    ids: np.ndarray  # single: [n] narrowest dtype; multi-hot: int32 [n, max_len]
    mask: np.ndarray | None = None  # multi-hot: uint8 [n, max_len]
    lengths: np.ndarray | None = None  # multi-hot: list length before truncation


def _encode_codes(
    con,
    spec,
    codes: np.ndarray,
    distinct: pa.Array,
    params: Params,
    is_train: np.ndarray,
    rows: np.ndarray,
    lengths: np.ndarray | None = None,
) -> EncodedField:
    """Build a field's train vocabulary from its codes and map rows to ids, in output order.

    ``distinct[codes]`` are the field's values (of every row; of every list element for a
    multi-hot field, with ``lengths`` the list lengths).
    """
    data = params.data
    if lengths is None:  # into output order first (the one random gather): train is then a prefix
        codes = np.take(codes, rows)
        train_codes = codes[: np.count_nonzero(is_train)]
    else:
        train_codes = codes[np.repeat(is_train, lengths)]
    train_counts = np.bincount(train_codes, minlength=len(distinct))
    cur = con.cursor()  # its own connection: the main thread may be reading the next column meanwhile
    try:
        bounds = None
        if spec.kind == "numeric" and data.numeric.bucketing == "quantile":
            bounds = quantile_bounds(cur, distinct.take(pa.array(train_codes)), data.numeric.quantile_buckets)
        del train_codes
        tokens = distinct_tokens(cur, spec, distinct, data.numeric, bounds)
    finally:
        cur.close()
    vocab, value_id = build_vocabulary(spec, tokens, train_counts, data.min_count)
    if spec.kind != "multi_hot":
        return EncodedField(vocab, np.take(value_id.astype(id_dtype(vocab.size)), codes))  # a small-table lookup
    longest = int(lengths[is_train].max(initial=1))
    vocab.max_len = max(1, min(longest, data.multi_hot_max_len))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids, mask, _ = pad_lists(offsets, np.take(value_id, codes), vocab.max_len)
    return EncodedField(vocab, np.take(ids, rows, axis=0), np.take(mask, rows, axis=0), np.take(lengths, rows))


def _encode_column(
    con, spec, column: pa.ChunkedArray, params: Params, is_train: np.ndarray, rows: np.ndarray
) -> EncodedField:
    """Dictionary-encode one field's column (as read from ``raw``), then :func:`_encode_codes`."""
    lengths = None
    if spec.kind == "multi_hot":
        lengths = pc.list_value_length(column).to_numpy().astype(np.int64)
        column = pc.list_flatten(column)
    codes, distinct = dictionary_codes(column)
    del column
    return _encode_codes(con, spec, codes, distinct, params, is_train, rows, lengths)


def _encode(con, staged: StagedSource, params: Params, assignment: SplitAssignment) -> list[EncodedField]:
    """Encode every field, in schema order.

    DuckDB reads one column at a time (each read is itself parallel; two at once thrash its
    buffer pool once ``raw`` has spilled), while worker threads encode the columns already read
    (Arrow compute and numpy release the GIL). At most ``threads`` columns wait or are being
    encoded, which bounds memory. A source staged as codes hands over each field's codes
    instead (released once the field is encoded).
    """
    is_train = assignment.split == 0
    workers = worker_threads(params)
    jobs: list[Future] = []
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(staged.fields), desc="encode", unit="field", leave=False) as bar,
    ):
        for spec in staged.fields:
            running = [job for job in jobs if not job.done()]
            if len(running) >= workers:
                wait(running, return_when=FIRST_COMPLETED)
            for job in jobs:
                if job.done():
                    job.result()  # a failed field stops the run now, not after every column is read
            if staged.coded is None:
                column = _column(con, value_sql(spec), staged.rows_loaded)
                jobs.append(pool.submit(_encode_column, con, spec, column, params, is_train, assignment.rows))
                del column
            else:  # the field is a plain column of the file
                coded = staged.coded.pop(spec.name)
                args = (con, spec, coded.codes, coded.distinct, params, is_train, assignment.rows)
                jobs.append(pool.submit(_encode_codes, *args))
                del coded, args
            jobs[-1].add_done_callback(lambda _: bar.update())
        return [job.result() for job in jobs]


@dataclass
class RowColumns:
    """Label, timestamp and raw entity values of every usable row, in output order."""

    labels: np.ndarray  # uint8
    timestamps: np.ndarray  # int64
    entities: list[pa.Array]


def _row_columns(con, staged: StagedSource, assignment: SplitAssignment) -> RowColumns:
    """Fetch label, time and entities of every staged row in rowid order and gather them into output order.

    They come from ``raw``; a source staged as codes has no timestamp or entities, and DuckDB
    evaluates its label SQL over its columns handed over as Arrow dictionary arrays.
    """
    ts = staged.timestamp_sql or "0"
    cols = [f"{staged.label_sql} AS label", f"CAST({ts} AS BIGINT) AS ts"]
    cols += [f"CAST({q(e)} AS VARCHAR) AS e{k}" for k, e in enumerate(staged.entities)]
    if staged.coded is None:
        table = con.sql(f"SELECT rowid AS rid, {', '.join(cols)} FROM raw").to_arrow_table()
        if not np.array_equal(table.column("rid").to_numpy(), np.arange(staged.rows_loaded)):
            raise RuntimeError("raw was not read in rowid order")  # a bug, not bad data
    else:
        if staged.timestamp_sql or staged.entities:  # a bug: such sources are staged into raw
            raise RuntimeError(f"source {staged.name} staged as codes cannot have a timestamp or entities")
        columns = {
            name: pa.DictionaryArray.from_arrays(c.codes, c.distinct)
            for name, c in staged.coded.items()
            if c.distinct.null_count == 0  # the label never holds a null
        }
        table = con.from_arrow(pa.table(columns)).project(", ".join(cols)).to_arrow_table()  # in row order
        if table.num_rows != staged.rows_loaded:
            raise RuntimeError(f"read {table.num_rows} labels, expected {staged.rows_loaded}")  # a bug
    rows = assignment.rows
    labels = pc.fill_null(table.column("label"), 0).to_numpy().astype(np.uint8)[rows]
    timestamps = pc.fill_null(table.column("ts"), 0).to_numpy().astype(np.int64)[rows]
    take = pa.array(rows)
    entities = [table.column(f"e{k}").take(take).combine_chunks() for k in range(len(staged.entities))]
    return RowColumns(labels, timestamps, entities)


_BLOCK_ROWS = 1 << 16  # rows per block when interleaving columns into the row-major matrix (cache-sized)


def _single(fields: list[EncodedField]) -> list[EncodedField]:
    return [f for f in fields if f.vocab.field.kind != "multi_hot"]


def _multi(fields: list[EncodedField]) -> list[EncodedField]:
    return [f for f in fields if f.vocab.field.kind == "multi_hot"]


def _write_arrays(folder: Path, start: int, stop: int, fields: list[EncodedField], base: RowColumns) -> None:
    """One split's ``.npy`` arrays from rows ``start:stop``, appended block by block."""
    single, multi = _single(fields), _multi(fields)
    widths = {f.vocab.field.name: f.vocab.max_len for f in multi}
    writer = SplitWriter(folder, stop - start, len(single), widths)
    matrix = np.empty((_BLOCK_ROWS, len(single)), dtype=np.int32)
    for a in range(start, stop, _BLOCK_ROWS):
        b = min(a + _BLOCK_ROWS, stop)
        block = matrix[: b - a]
        for j, f in enumerate(single):
            block[:, j] = f.ids[a:b]
        multi_hot = {f.vocab.field.name: (f.ids[a:b], f.mask[a:b]) for f in multi}
        writer.write(block, base.labels[a:b], base.timestamps[a:b], multi_hot)
    writer.close()


def _write_parquet(
    path: Path,
    start: int,
    stop: int,
    staged: StagedSource,
    fields: list[EncodedField],
    base: RowColumns,
    batch_rows: int,
    compression: str,
) -> None:
    """One split's parquet file from rows ``start:stop``, one row group per ``batch_rows``.

    Narrow ids are widened to int32 into buffers reused by every row group (the writer is done
    with a table once it returns): no fresh pages to fault in per row group.
    """
    writer: pq.ParquetWriter | None = None
    single = _single(fields)
    widened = {f.vocab.field.name: np.empty(batch_rows, dtype=np.int32) for f in single if f.ids.dtype != np.int32}
    for a in range(start, stop, batch_rows):
        b = min(a + batch_rows, stop)
        table = {
            "split_pos": np.arange(a - start, b - start, dtype=np.int64),
            "label": base.labels[a:b],
            "timestamp": base.timestamps[a:b],
        }
        for entity, values in zip(staged.entities, base.entities, strict=True):
            table[f"raw_{entity}"] = values.slice(a, b - a)
        for f in single:
            name = f.vocab.field.name
            if name in widened:
                table[name] = widened[name][: b - a]
                np.copyto(table[name], f.ids[a:b])
            else:
                table[name] = f.ids[a:b]
        for f in _multi(fields):
            kept = f.mask[a:b].astype(bool)
            offsets = np.concatenate([[0], np.cumsum(kept.sum(axis=1))]).astype(np.int32)
            table[f.vocab.field.name] = pa.ListArray.from_arrays(offsets, pa.array(f.ids[a:b][kept]))
        table = pa.table(table)
        if writer is None:
            # The columns are already dictionary codes: parquet's own dictionary pass would only
            # cost time (about half of the write) for a few percent of size. Byte-stream-split
            # integers (their high bytes are mostly zero, and grouped) compress faster and a third
            # smaller than plain ones.
            fixed = ["split_pos", "label", "timestamp", *(f.vocab.field.name for f in single)]
            writer = pq.ParquetWriter(
                path, table.schema, use_dictionary=False, compression=compression, use_byte_stream_split=fixed
            )
        writer.write_table(table)
    if writer is not None:
        writer.close()


def _split_stats(start: int, stop: int, fields: list[EncodedField], base: RowColumns) -> SplitStats:
    """Rows, positives and OOV counts of one split (rows ``start:stop``)."""
    single = _single(fields)
    stats = SplitStats(len(single))
    stats.rows = stop - start
    stats.positives = int(base.labels[start:stop].sum(dtype=np.int64))
    stats.oov = np.array([np.count_nonzero(f.ids[start:stop] == 0) for f in single], dtype=np.int64)
    for f in _multi(fields):
        name, mask, ids = f.vocab.field.name, f.mask[start:stop], f.ids[start:stop]
        stats.add(name, "mh_tokens", np.count_nonzero(mask))
        stats.add(name, "mh_oov", np.count_nonzero((ids == 0) & (mask != 0)))
        stats.add(name, "mh_truncated", np.count_nonzero(f.lengths[start:stop] > f.vocab.max_len))
    return stats


def _start_writes(
    pool: ThreadPoolExecutor,
    staged: StagedSource,
    fields: list[EncodedField],
    base: RowColumns,
    assignment: SplitAssignment,
    build_dir: Path,
    params: Params,
) -> list[Future]:
    """Queue the arrays and parquet of every split on ``pool`` (files are written side by side).

    Every output is written sequentially from the encoded columns (already in output order).
    The train parquet file is the largest single job, so it goes first.
    """
    (build_dir / "parquet").mkdir(parents=True, exist_ok=True)
    jobs = [
        pool.submit(
            _write_parquet,
            build_dir / "parquet" / f"{name}.parquet",
            *assignment.bounds(name),
            staged,
            fields,
            base,
            params.data.batch_rows,
            params.data.parquet_compression,
        )
        for name in SPLITS
    ]
    jobs += [
        pool.submit(_write_arrays, build_dir / "arrays" / name, *assignment.bounds(name), fields, base)
        for name in SPLITS
    ]
    return jobs


def _summary(
    meta: dict,
    stats: dict[str, SplitStats],
    vocabs: list[Vocabulary],
    quarantined: int,
    quarantine_path: Path,
    seconds: float,
) -> dict:
    """The human-facing summary: rows and positive rate per split, quarantine, field stats."""
    held_out = [s for s in SPLITS if s != "train"]
    fields, j = {}, 0
    for v in vocabs:
        name = v.field.name
        entry = {"kind": v.field.kind, "cardinality": v.cardinality, "vocab_size": v.size}
        if v.field.kind == "multi_hot":
            entry["max_len"] = v.max_len
            entry["oov_rate"] = {
                s: stats[s].mh_oov.get(name, 0) / max(stats[s].mh_tokens.get(name, 0), 1) for s in held_out
            }
            entry["truncated_rows"] = sum(st.mh_truncated.get(name, 0) for st in stats.values())
        else:
            entry["oov_rate"] = {s: float(stats[s].oov[j]) / max(stats[s].rows, 1) for s in held_out}
            j += 1
        fields[name] = entry
    usable = sum(st.rows for st in stats.values())
    return {
        "source": meta["source"],
        "data_version": meta["data_version"],
        "split_method": meta["split_method"],
        "rows": {"total": usable, **{s: stats[s].rows for s in SPLITS}},
        "positive_rate": {
            "all": sum(st.positives for st in stats.values()) / max(usable, 1),
            **{s: stats[s].positives / max(stats[s].rows, 1) for s in SPLITS},
        },
        "quarantined_rows": quarantined,
        "quarantine_file": str(quarantine_path),
        "fields": fields,
        "seconds": round(seconds, 2),
    }


def _meta(params: Params, staged: StagedSource, assignment: SplitAssignment, vocabs: list[Vocabulary]) -> dict:
    """Machine-facing description of the prepared data set (fields in model order)."""
    return {
        "format_version": FORMAT_VERSION,
        "data_version": data_version(params, staged),
        "source": staged.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": [str(p) for p in staged.inputs],
        "split_method": assignment.method,
        "splits": assignment.counts,
        "entities": staged.entities,
        "has_timestamp": staged.timestamp_sql is not None,
        "fields": [
            {
                "name": v.field.name,
                "kind": v.field.kind,
                "vocab_size": v.size,
                "cardinality": v.cardinality,
                **({"max_len": v.max_len} if v.field.kind == "multi_hot" else {}),
            }
            for v in vocabs
        ],
    }


def prepare_dataset(params: Params, output_dir: Path, warehouse: Path) -> dict:
    """Run the whole prepare step and publish ``output_dir`` and ``warehouse`` atomically.

    Returns the summary (also written to ``output_dir/summary.json``).
    """
    started = time.perf_counter()
    for target in (output_dir, warehouse):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target)
    build_dir, build_db = temp_path(output_dir), temp_path(warehouse)
    spill = _spill_dir(build_db)
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    con = _connect(spill, params)
    try:
        create_quarantine_table(con)
        log.info("staging source '%s'", params.data.source)
        staged = stage_source(con, params)
        bad = _post_check(con, staged)
        fallback = output_dir.parent / f"quarantine-{params.data.source}-failed.csv"
        quarantined = _check_quarantine_share(con, staged, params, fallback)
        assignment = assign_splits(con, staged, params.data.split, params.seed, bad)
        log.info("split (%s): %s", assignment.method, assignment.counts)
        # From here on raw is only read, a column at a time in rowid order (encoding gathers rows by rowid).
        con.execute("SET preserve_insertion_order = true")
        _read_memory_limit(con, params)
        base = _row_columns(con, staged, assignment)
        fields = _encode(con, staged, params, assignment)
        con.execute("DROP TABLE IF EXISTS raw")  # frees DuckDB's memory before the outputs are written
        vocabs = [f.vocab for f in fields]
        meta = _meta(params, staged, assignment, vocabs)
        with ThreadPoolExecutor(worker_threads(params)) as pool:
            writes = _start_writes(pool, staged, fields, base, assignment, build_dir, params)
            # Meanwhile: what needs none of those files (quarantine CSV, vocab.parquet, warehouse tables).
            write_quarantine_csv(con, build_dir / QUARANTINE_FILE)
            vocab = vocab_table(vocabs)
            pq.write_table(vocab, build_dir / "vocab.parquet")
            write_warehouse_tables(con, build_db, meta, vocab)
            stats = {name: _split_stats(*assignment.bounds(name), fields, base) for name in SPLITS}
            for job in tqdm(writes, desc="write", unit="file", leave=False):
                job.result()
        del fields, base
        summary = _summary(
            meta, stats, vocabs, quarantined, output_dir / QUARANTINE_FILE, time.perf_counter() - started
        )
        (build_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        (build_dir / META_FILE).write_text(json.dumps(meta, indent=2))  # last: marks the folder complete
        publish(build_dir, output_dir)
        finish_warehouse(con, output_dir, params.path("."))
        con.close()
        publish(build_db, warehouse)
    except BaseException:
        con.close()
        shutil.rmtree(build_dir, ignore_errors=True)
        for leftover in build_db.parent.glob(build_db.name + "*"):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return summary
