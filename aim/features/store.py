"""The Feast store built in code from params: RepoConfig, apply, materialize.

Defaults: provider ``local``, file registry ``<store_dir>/registry.db``, DuckDB offline store,
SQLite online store ``<store_dir>/online.db``, entity key serialization version 3. Switches:
``features.registry`` (a SQL URL -> SQL registry) and ``features.online_store: redis``
(``features.redis_connection``). ``features/feature_store.yaml`` holds the same defaults for
the ``feast`` CLI.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aim.config import Params
from aim.errors import ConfigError
from aim.features.layout import FeastLayout, FeatureManifest, feast_layout

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from aim.features.definitions import FeastObjects

log = logging.getLogger(__name__)

ENTITY_KEY_SERIALIZATION_VERSION = 3


@contextlib.contextmanager
def quiet_ibis() -> Iterator[None]:
    """Hide ibis 12's "fetch_arrow_table() is deprecated" warning on DuckDB 2 (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fetch_arrow_table", category=DeprecationWarning)
        yield


def registry_settings(params: Params, layout: FeastLayout) -> dict:
    """File registry in the store folder, or the SQL registry at ``features.registry``."""
    url = params.features.registry
    if url:
        return {"registry_type": "sql", "path": url, "cache_ttl_seconds": 60}
    return {"registry_type": "file", "path": str(layout.registry), "cache_ttl_seconds": 60}


def online_settings(params: Params, layout: FeastLayout) -> dict:
    """SQLite in the store folder, or Redis at ``features.redis_connection``."""
    if params.features.online_store == "redis":
        if importlib.util.find_spec("redis") is None:
            raise ConfigError(
                "features.online_store is redis but the redis client is not installed: pip install 'feast[redis]'"
            )
        return {"type": "redis", "connection_string": params.features.redis_connection}
    return {"type": "sqlite", "path": str(layout.online_db)}


def repo_config(params: Params) -> RepoConfig:
    """The Feast ``RepoConfig`` for these params (what feature_store.yaml would say)."""
    from feast.repo_config import RepoConfig

    layout = feast_layout(params)
    layout.root.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=params.features.project,
        provider="local",
        registry=registry_settings(params, layout),
        offline_store={"type": "duckdb"},
        online_store=online_settings(params, layout),
        entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION,
        repo_path=params.path(params.features.repo).resolve(),
    )


def open_store(params: Params) -> FeatureStore:
    """A ``FeatureStore`` for these params (Feast's per-call INFO chatter is turned down to warnings)."""
    from feast import FeatureStore

    feast_log = logging.getLogger("feast")
    if feast_log.level == logging.NOTSET:
        feast_log.setLevel(logging.WARNING)
    return FeatureStore(config=repo_config(params))


def apply_objects(store: FeatureStore, objects: FeastObjects) -> list[str]:
    """Register ``objects``; first drop views whose data or definition changed, or that went away.

    A dropped view loses its online table, so the online store never mixes rows of two data
    versions. Returns the names of the views dropped.
    """
    wanted = {v.name: v.tags.get("aim_fingerprint") for v in objects.views}
    stale = [v for v in store.list_feature_views() if wanted.get(v.name, "gone") != v.tags.get("aim_fingerprint")]
    if stale:
        names = {e.name for e in objects.entities}
        sources = {s.name for s in objects.sources}
        gone = [e for e in store.list_entities() if e.name not in names]
        gone += [s for s in store.list_data_sources() if s.name not in sources]
        log.info("dropping feature views %s (data or definition changed)", [v.name for v in stale])
        store.apply([], objects_to_delete=[*stale, *gone], partial=False)
    store.apply(objects.all())
    return [v.name for v in stale]


def materialize_all(store: FeatureStore, manifest: FeatureManifest) -> tuple[datetime, datetime]:
    """Load the latest values of every view into the online store over the data's whole time range.

    (``materialize_incremental`` without an earlier run would start at now - ttl.) Feast prints
    progress to stdout; it goes to the debug log instead.
    """
    start = datetime.fromtimestamp(manifest.start, UTC)
    end = datetime.fromtimestamp(manifest.end, UTC) + timedelta(seconds=1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), quiet_ibis():
        store.materialize(start, end, feature_views=[v.name for v in manifest.views])
    log.debug("feast materialize: %s", printed.getvalue())
    return start, end
