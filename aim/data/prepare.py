"""The prepare step: stage a source, split it, build vocabularies, write model-ready data.

How it stays fast and memory-bounded: the source is parsed once by DuckDB's parallel reader
into an in-memory table that spills to disk past ``data.duckdb_memory_limit``; vocabularies are
DuckDB aggregations over the training rows; encoding is one streamed query whose Arrow batches
are scattered into memory-mapped arrays and parquet. No Python object per row ever exists.

Everything is built in temp locations and published atomically at the end (see
:mod:`aim.data.atomic`): the warehouse file, and the prepared folder with ``meta.json``,
``summary.json``, ``quarantine.csv``, ``vocab.parquet``, ``arrays/<split>/`` and
``parquet/<split>.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
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
from aim.data.encoding import Vocabulary, build_vocabulary, count_train_tokens, quantile_bounds, token_sql
from aim.data.quarantine import create_quarantine_table, quarantine_count, quarantine_rows, write_quarantine_csv
from aim.data.schema import StagedSource
from aim.data.sources import q, stage_source
from aim.data.splits import SPLITS, SplitAssignment, assign_splits
from aim.data.warehouse import write_vocab, write_warehouse
from aim.errors import DataError

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
QUARANTINE_FILE = "quarantine.csv"
FORMAT_VERSION = 1


@dataclass
class SplitStats:
    """Counts gathered while encoding one split."""

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


def _spill_dir(build_db: Path) -> Path:
    return build_db.with_name(build_db.name.replace(".tmp-", ".spill-"))


def _connect(spill: Path, params: Params) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to ``spill`` past the configured memory limit."""
    con = duckdb.connect()
    threads = params.data.threads or os.cpu_count() or 1
    con.execute(f"SET threads = {int(threads)}")
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


def _vocabularies(con, staged: StagedSource, params: Params, split_sql: str) -> tuple[list[Vocabulary], list[str]]:
    """Token SQL and train vocabulary of every field."""
    data = params.data
    train_rows = f"raw WHERE {split_sql} = 0"
    tokens = []
    for spec in staged.fields:
        bounds = None
        if spec.kind == "numeric" and data.numeric.bucketing == "quantile":
            bounds = quantile_bounds(con, spec, data.numeric.quantile_buckets, train_rows)
        tokens.append(token_sql(spec, data.numeric, bounds))
    count_train_tokens(con, staged.fields, tokens, train_rows)
    vocabs = [
        build_vocabulary(con, i, spec, tokens[i], data.min_count, data.multi_hot_max_len, train_rows)
        for i, spec in enumerate(tqdm(staged.fields, desc="vocabularies", unit="field", leave=False))
    ]
    con.execute("DROP TABLE token_counts")
    return vocabs, tokens


def _encode_sql(staged: StagedSource, vocabs: list[Vocabulary], tokens: list[str], assignment: SplitAssignment) -> str:
    """One query giving rowid, label, time, entity values and the id of every field.

    Rows come out ordered by split and, inside a split, by position (``SplitAssignment.order_keys``),
    so arrays and parquet are written sequentially and are the same on every run.
    """
    ts = staged.timestamp_sql or "0"
    inner = [
        f"{assignment.split_sql} AS split_code",
        *(f"{key} AS o{k}" for k, key in enumerate(assignment.order_keys)),
        "rowid AS rid",
        f"{staged.label_sql} AS label",
        f"CAST({ts} AS BIGINT) AS ts",
    ]
    inner += [f"CAST({q(e)} AS VARCHAR) AS e{k}" for k, e in enumerate(staged.entities)]
    outer = ["r.rid", "r.label", "r.ts"] + [f"r.e{k}" for k in range(len(staged.entities))]
    joins = []
    for i, (vocab, expr) in enumerate(zip(vocabs, tokens, strict=True)):
        if vocab.field.kind == "multi_hot":
            inner.append(f"{expr} AS t{i}")
            outer.append(f"r.t{i}")
        else:
            inner.append(f"hash({expr}) AS t{i}")
            outer.append(f"COALESCE(v{i}.id, 0) AS t{i}")
            joins.append(f"LEFT JOIN {vocab.table} v{i} ON r.t{i} = v{i}.key")
    usable = " AND ".join(f"NOT ({c.bad_sql})" for c in staged.checks) or "true"
    return (
        f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM raw WHERE {usable}) r {' '.join(joins)} "
        "ORDER BY r.split_code, r.o0, r.o1, r.o2"
    )


class _ParquetSplits:
    """One parquet writer per split, fed the same batches as the arrays."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, split: str, table: pa.Table) -> None:
        if split not in self.writers:
            # The columns are already dictionary codes: parquet's own dictionary pass would only
            # cost time (about half of the write) for a few percent of size.
            self.writers[split] = pq.ParquetWriter(self.folder / f"{split}.parquet", table.schema, use_dictionary=False)
        self.writers[split].write_table(table)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _encode(con, staged, vocabs, tokens, assignment: SplitAssignment, build_dir: Path, batch_rows: int):
    """Stream encoded rows from DuckDB into memory-mapped arrays and parquet, per split."""
    single = [i for i, v in enumerate(vocabs) if v.field.kind != "multi_hot"]
    multi = [i for i, v in enumerate(vocabs) if v.field.kind == "multi_hot"]
    names = [v.field.name for v in vocabs]
    widths = {names[i]: vocabs[i].max_len for i in multi}
    value_sets = {}
    for i in multi:
        got = con.execute(f"SELECT token FROM {vocabs[i].table} ORDER BY id").fetchnumpy()["token"]
        value_sets[i] = pa.array(got, type=pa.string())
    writers = {s: SplitWriter(build_dir / "arrays" / s, assignment.counts[s], len(single), widths) for s in SPLITS}
    parquet = _ParquetSplits(build_dir / "parquet")
    stats = {s: SplitStats(len(single)) for s in SPLITS}
    reader = con.sql(_encode_sql(staged, vocabs, tokens, assignment)).to_arrow_reader(batch_rows)
    with tqdm(total=sum(assignment.counts.values()), desc="encode", unit="row", unit_scale=True, leave=False) as bar:
        for batch in reader:
            rid = batch.column("rid").to_numpy()
            split = assignment.split[rid]
            pos = assignment.pos[rid]
            labels = batch.column("label").to_numpy()
            ts = batch.column("ts").to_numpy()
            fields = np.empty((batch.num_rows, len(single)), dtype=np.int32)
            for j, i in enumerate(single):
                fields[:, j] = batch.column(f"t{i}").to_numpy()
            lists = {}
            for i in multi:
                col = batch.column(f"t{i}")
                offsets = col.offsets.to_numpy()
                values = col.values.slice(offsets[0], offsets[-1] - offsets[0])
                index = pc.index_in(values, value_set=value_sets[i]).fill_null(-1).to_numpy()
                ids, mask, _ = pad_lists(offsets - offsets[0], (index + 1).astype(np.int32), vocabs[i].max_len)
                lists[names[i]] = (ids, mask, np.diff(offsets))
            for code, name in enumerate(SPLITS):
                sel = np.flatnonzero(split == code)
                if not len(sel):
                    continue
                multi_hot = {f: (ids[sel], mask[sel]) for f, (ids, mask, _len) in lists.items()}
                if not np.array_equal(pos[sel], np.arange(writers[name].written, writers[name].written + len(sel))):
                    raise RuntimeError(f"encoded rows of split {name} arrived out of order")  # a bug, not bad data
                writers[name].write(fields[sel], labels[sel], ts[sel], multi_hot)
                cols = {"split_pos": pos[sel], "label": labels[sel], "timestamp": ts[sel]}
                for k, entity in enumerate(staged.entities):
                    cols[f"raw_{entity}"] = batch.column(f"e{k}").take(pa.array(sel))
                for j, i in enumerate(single):
                    cols[names[i]] = fields[sel, j]
                for f, (ids, mask) in multi_hot.items():
                    m = mask.astype(bool)
                    offsets = np.concatenate([[0], np.cumsum(m.sum(axis=1))]).astype(np.int32)
                    cols[f] = pa.ListArray.from_arrays(offsets, pa.array(ids[m]))
                parquet.write(name, pa.table(cols))
                st = stats[name]
                st.rows += len(sel)
                st.positives += int(labels[sel].sum())
                st.oov += (fields[sel] == 0).sum(axis=0)
                for f, (ids, mask, lengths) in lists.items():
                    m = mask[sel].astype(bool)
                    st.add(f, "mh_tokens", m.sum())
                    st.add(f, "mh_oov", (ids[sel][m] == 0).sum())
                    st.add(f, "mh_truncated", (lengths[sel] > widths[f]).sum())
            bar.update(batch.num_rows)
    for writer in writers.values():
        writer.close()
    parquet.close()
    return stats


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
        vocabs, tokens = _vocabularies(con, staged, params, assignment.split_sql)
        stats = _encode(con, staged, vocabs, tokens, assignment, build_dir, params.data.batch_rows)
        write_quarantine_csv(con, build_dir / QUARANTINE_FILE)
        meta = _meta(params, staged, assignment, vocabs)
        write_vocab(con, vocabs, build_dir / "vocab.parquet")
        summary = _summary(
            meta, stats, vocabs, quarantined, output_dir / QUARANTINE_FILE, time.perf_counter() - started
        )
        (build_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        (build_dir / META_FILE).write_text(json.dumps(meta, indent=2))  # last: marks the folder complete
        publish(build_dir, output_dir)
        write_warehouse(con, build_db, meta, output_dir, params.path("."))
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
