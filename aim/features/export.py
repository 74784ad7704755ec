"""Per-entity attribute tables for Feast, exported from the prepared parquet with DuckDB.

One row per (raw key, run of identical attribute values), stamped ``event_timestamp`` = the
time of the first event of that run. A static attribute gives one row per key at its first
event; an attribute that changes gives a new row at each change, so a point-in-time join
gives every event the values in force at its time (and A -> B -> A stays correct). Rows of a
key that share a timestamp keep the last one in split order (Feast needs one row per key
and time). Files are written beside the target and renamed in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from aim.data.sources import q
from aim.features.layout import FeastLayout, FeatureManifest, ViewSpec
from aim.features.prepared import sql_path

TIMESTAMP_COLUMN = "event_timestamp"


def attribute_sql(entity: str, fields: list[str]) -> str:
    """The query giving the point-in-time stamped attribute rows of ``entity``."""
    key = q(f"raw_{entity}")
    cols = ", ".join(q(f) for f in fields)
    changed = " OR ".join(f"{q(f)} IS DISTINCT FROM lag({q(f)}) OVER w" for f in fields)
    return (
        f"SELECT {key}, {cols}, to_timestamp(ts) AS {TIMESTAMP_COLUMN} FROM ("
        f"  SELECT {key}, {cols}, {q('timestamp')} AS ts, split_code, split_pos,"
        f"    row_number() OVER w = 1 OR {changed} AS run_start"
        f"  FROM events WHERE {key} IS NOT NULL"
        f"  WINDOW w AS (PARTITION BY {key} ORDER BY {q('timestamp')}, split_code, split_pos)"
        f") WHERE run_start "
        f"QUALIFY row_number() OVER (PARTITION BY {key}, ts ORDER BY split_code DESC, split_pos DESC) = 1 "
        f"ORDER BY {key}, ts"
    )


def export_entity(con: duckdb.DuckDBPyConnection, entity: str, fields: list[str], target: Path) -> int:
    """Write the attribute table of ``entity`` to ``target`` (parquet); returns its row count."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    con.execute(f"COPY ({attribute_sql(entity, fields)}) TO {sql_path(tmp)} (FORMAT parquet)")
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet({sql_path(tmp)})").fetchone()
    os.replace(tmp, target)
    return int(rows)


def export_views(
    con: duckdb.DuckDBPyConnection,
    meta: dict,
    views: dict[str, list[str]],
    layout: FeastLayout,
    project: str,
    ttl_days: int,
) -> FeatureManifest:
    """Export every view's table to ``layout.source(entity)`` and describe them in a manifest.

    ``con`` has the ``events`` view (:func:`aim.features.prepared.connect_events`). The
    manifest's time range covers every event, so one ``materialize(start, end)`` loads all.
    """
    kinds = {f["name"]: f for f in meta["fields"]}
    specs = []
    for entity, fields in views.items():
        rows = export_entity(con, entity, fields, layout.source(entity))
        described = [
            {"name": f, "kind": kinds[f]["kind"], **({"max_len": kinds[f]["max_len"]} if "max_len" in kinds[f] else {})}
            for f in fields
        ]
        specs.append(ViewSpec(entity, described, rows))
    for stale in layout.sources.glob("*.parquet"):
        if stale.stem not in views:
            stale.unlink()
    start, end = con.execute(f"SELECT min({q('timestamp')}), max({q('timestamp')}) FROM events").fetchone()
    return FeatureManifest(project, meta["data_version"], ttl_days, int(start or 0), int(end or 0), specs)
