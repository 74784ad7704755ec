"""Train/valid/test arrays by point-in-time joins, in exactly the prepared folder's format.

Each split's parquet is streamed in chunks of ``features.chunk_rows`` rows. The entity rows
(``split_pos``, ``event_timestamp``, raw keys) go to ``store.get_historical_features``; the
result is put back in split order and checked against the chunk. A field of a view takes the
joined value, every other field (and label, timestamp) the event's own. No joined row (the
attributes were stamped after the event, outside the ttl, or the key is null) -> id 0 (OOV)
and an empty multi-hot list, counted per view. Arrays are written with :class:`SplitWriter`
into a temp folder and published atomically with ``meta.json`` and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aim.data.arrays import META_FILE, SplitWriter, pad_lists
from aim.data.atomic import clean_stale, publish, temp_path
from aim.data.splits import SPLITS
from aim.features.export import TIMESTAMP_COLUMN
from aim.features.layout import FeatureManifest
from aim.features.prepared import split_parquet
from aim.features.store import quiet_ibis

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


@dataclass
class SplitResult:
    """Rows written and rows without a joined feature row, per view, for one split."""

    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)


def list_ids(column: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A list<int> column (null = empty) as padded [rows, width] ids and mask."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids, mask, _ = pad_lists(offsets, values, width)
    return ids, mask


def entity_frame(chunk: pa.Table, entities: list[str]) -> pd.DataFrame:
    """Feast's entity_df for a chunk: split_pos, event_timestamp (UTC) and the raw keys."""
    frame = pd.DataFrame({"split_pos": chunk.column("split_pos").to_numpy()})
    frame[TIMESTAMP_COLUMN] = pd.to_datetime(chunk.column("timestamp").to_numpy(), unit="s", utc=True)
    for entity in entities:
        frame[f"raw_{entity}"] = chunk.column(f"raw_{entity}").to_pandas()
    return frame


def join_chunk(store: FeatureStore, chunk: pa.Table, manifest: FeatureManifest) -> pa.Table:
    """Point-in-time join of one chunk's events with every view, back in the chunk's row order."""
    refs = [ref for spec in manifest.views for ref in spec.refs]
    entity_df = entity_frame(chunk, [spec.entity for spec in manifest.views])
    with quiet_ibis():
        joined = store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
    joined = joined.take(pc.sort_indices(joined.column("split_pos")))
    if joined.num_rows != chunk.num_rows or not joined.column("split_pos").equals(chunk.column("split_pos")):
        raise RuntimeError(f"Feast returned {joined.num_rows} rows for {chunk.num_rows} events")  # a bug, not data
    return joined


def _write_chunk(writer: SplitWriter, chunk: pa.Table, joined: pa.Table | None, meta: dict, owner: dict) -> None:
    """Arrays of one chunk: fields of a view from ``joined``, the rest from the event rows."""

    def column(name: str):
        return joined.column(name) if name in owner else chunk.column(name)

    single = [f["name"] for f in meta["fields"] if f["kind"] != "multi_hot"]
    fields = np.zeros((chunk.num_rows, len(single)), dtype=np.int32)
    for j, name in enumerate(single):
        fields[:, j] = column(name).fill_null(0).to_numpy()
    multi_hot = {
        f["name"]: list_ids(column(f["name"]), f["max_len"]) for f in meta["fields"] if f["kind"] == "multi_hot"
    }
    writer.write(fields, chunk.column("label").to_numpy(), chunk.column("timestamp").to_numpy(), multi_hot)


def assemble_split(
    store: FeatureStore | None,
    manifest: FeatureManifest | None,
    meta: dict,
    parquet: Path,
    folder: Path,
    rows: int,
    chunk_rows: int,
) -> SplitResult:
    """Stream one split's parquet through the joins into ``folder``'s arrays."""
    views = manifest.views if manifest else []
    owner = {name: spec.entity for spec in views for name in spec.field_names}
    widths = {f["name"]: f["max_len"] for f in meta["fields"] if f["kind"] == "multi_hot"}
    n_single = sum(f["kind"] != "multi_hot" for f in meta["fields"])
    writer = SplitWriter(folder, rows, n_single, widths)
    result = SplitResult(missing={spec.entity: 0 for spec in views})
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=chunk_rows):
        chunk = pa.Table.from_batches([batch])
        expected = np.arange(writer.written, writer.written + chunk.num_rows)
        if not np.array_equal(chunk.column("split_pos").to_numpy(), expected):
            raise RuntimeError(f"{parquet} is not in split_pos order")  # prepare writes it in order
        joined = join_chunk(store, chunk, manifest) if views else None
        for spec in views:
            result.missing[spec.entity] += joined.column(spec.field_names[0]).null_count
        _write_chunk(writer, chunk, joined, meta, owner)
    writer.close()  # checks the row count against the prepared split
    result.rows = writer.written
    return result


def assemble_dataset(
    prepared: Path,
    meta: dict,
    output_dir: Path,
    store: FeatureStore | None,
    manifest: FeatureManifest | None,
    chunk_rows: int,
) -> dict[str, SplitResult]:
    """Build every split into a temp folder beside ``output_dir`` and publish it atomically.

    Without a manifest (no entities, or no attribute fields) the arrays come straight from the
    parquet through the same writer. ``meta.json`` = the prepared meta plus a ``features``
    entry; it is written last, marking the folder complete.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(output_dir)
    build = temp_path(output_dir)
    shutil.rmtree(build, ignore_errors=True)
    try:
        results = {}
        for split in SPLITS:
            results[split] = assemble_split(
                store,
                manifest,
                meta,
                split_parquet(prepared, split),
                build / "arrays" / split,
                meta["splits"][split],
                chunk_rows,
            )
            log.info("assembled %s: %d rows, missing features %s", split, results[split].rows, results[split].missing)
        entry = features_entry(manifest, results)
        (build / SUMMARY_FILE).write_text(json.dumps({"data_version": meta["data_version"], **entry}, indent=2) + "\n")
        (build / META_FILE).write_text(json.dumps({**meta, "features": entry}, indent=2) + "\n")
        publish(build, output_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return results


def features_entry(manifest: FeatureManifest | None, results: dict[str, SplitResult]) -> dict:
    """The ``features`` entry of meta.json / summary.json."""
    return {
        "joined": bool(manifest and manifest.views),
        "project": manifest.project if manifest else None,
        "ttl_days": manifest.ttl_days if manifest else None,
        "views": {spec.entity: spec.field_names for spec in manifest.views} if manifest else {},
        "feature_views": {spec.entity: spec.name for spec in manifest.views} if manifest else {},
        "rows": {split: r.rows for split, r in results.items()},
        "missing_rows": {split: r.missing for split, r in results.items()},
    }
