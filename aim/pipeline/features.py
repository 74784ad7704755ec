"""Stage ``features``: Feast views over the prepared data -> point-in-time training sets.

Export the entity attribute tables, ``apply`` the Feast objects, ``materialize`` the online
store over the data's whole time range, then assemble train/valid/test with
``get_historical_features`` into ``features.output_dir`` (what the model stages read).
"""

from __future__ import annotations

import json
import logging
import time

from aim.config import Params
from aim.features.assemble import SplitResult, assemble_dataset
from aim.features.layout import FeatureManifest, feast_layout, write_manifest
from aim.features.prepared import connect_events, read_prepared_meta

log = logging.getLogger(__name__)

METRICS_FILE = "features.json"


def build_store(params: Params, meta: dict) -> tuple[FeatureManifest, object | None]:
    """Derive/check the views, export them, apply and materialize; returns (manifest, store).

    The store is None when no entity has an attribute field (nothing to join).
    """
    from aim.features.export import export_views
    from aim.features.views import resolve_views

    cfg, layout = params.features, feast_layout(params)
    con = connect_events(params.path(params.data.output_dir))
    try:
        views = resolve_views(con, meta, cfg.views)
        manifest = export_views(con, meta, views, layout, cfg.project, cfg.ttl_days)
    finally:
        con.close()
    write_manifest(layout, manifest)
    if not manifest.views:
        return manifest, None

    from aim.features.definitions import feast_objects
    from aim.features.store import apply_objects, materialize_all, open_store

    store = open_store(params)
    apply_objects(store, feast_objects(manifest, layout))
    materialize_all(store, manifest)
    return manifest, store


def _summary(params: Params, manifest: FeatureManifest | None, results: dict[str, SplitResult], seconds: float) -> str:
    rows = " / ".join(f"{r.rows:,} {s}" for s, r in results.items())
    out = params.path(params.features.output_dir)
    if manifest is None or not manifest.views:
        why = "no entities in the data" if manifest is None else "no entity attribute fields"
        return (
            f"features: {why}, nothing to join: assembled {rows} straight from the prepared parquet "
            f"in {seconds:.1f}s -> {out}"
        )
    views = ", ".join(f"{v.entity}[{', '.join(v.field_names)}]" for v in manifest.views)
    missing = sum(n for r in results.values() for n in r.missing.values())
    return (
        f"features: Feast view(s) {views} applied and materialized; assembled {rows} by point-in-time "
        f"joins ({missing:,} missing feature rows -> OOV id 0) in {seconds:.1f}s -> {out}"
    )


def run_features(params: Params) -> dict:
    """Run the stage (or nothing when ``features.enabled`` is false); returns the figures and a summary line.

    Also writes ``<metrics>/features.json``: rows per split, rows missing features, views, seconds.
    """
    cfg = params.features
    if not cfg.enabled:
        log.info("features.enabled is false: nothing to do, the model stages read %s", params.data.output_dir)
        return {"summary": f"features disabled (features.enabled: false): model stages read {params.data.output_dir}"}
    started = time.perf_counter()
    prepared = params.path(params.data.output_dir)
    meta = read_prepared_meta(prepared)
    manifest, store = build_store(params, meta) if meta["entities"] else (None, None)
    results = assemble_dataset(prepared, meta, params.path(cfg.output_dir), store, manifest, cfg.chunk_rows)
    seconds = time.perf_counter() - started
    figures = {
        "rows": {s: r.rows for s, r in results.items()},
        "missing_rows": {s: r.missing for s, r in results.items()},
        "views": {v.entity: v.field_names for v in manifest.views} if manifest else {},
        "view_rows": {v.entity: v.rows for v in manifest.views} if manifest else {},
        "seconds": round(seconds, 2),
    }
    path = params.path(params.metrics) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return {**figures, "summary": _summary(params, manifest, results, seconds)}
