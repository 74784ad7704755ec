"""Which fields are attributes of which entity: ``features.views`` or derived from the data.

A field is an attribute of entity ``e`` when every raw key of ``e`` has exactly one value of
it over all splits (one DuckDB aggregation per entity). A field joins at most one view: the
first entity in ``meta["entities"]`` that it qualifies for. Fields in no view stay event-level.
"""

from __future__ import annotations

import logging

import duckdb

from aim.data.sources import q
from aim.errors import ConfigError

log = logging.getLogger(__name__)


def derive_views(con: duckdb.DuckDBPyConnection, meta: dict) -> dict[str, list[str]]:
    """Entity -> the fields that have one value per raw key (``con`` has the ``events`` view)."""
    names = [f["name"] for f in meta["fields"]]
    taken: set[str] = set()
    views: dict[str, list[str]] = {}
    for entity in meta["entities"]:
        free = [n for n in names if n not in taken]
        if not free:
            break
        key = q(f"raw_{entity}")
        counts = ", ".join(f"count(DISTINCT {q(n)}) AS c{i}" for i, n in enumerate(free))
        worst = ", ".join(f"max(c{i})" for i in range(len(free)))
        row = con.execute(
            f"SELECT {worst} FROM (SELECT {counts} FROM events WHERE {key} IS NOT NULL GROUP BY {key})"
        ).fetchone()
        attrs = [n for n, most in zip(free, row, strict=True) if most == 1]
        if attrs:
            views[entity] = attrs
            taken.update(attrs)
    log.info("derived feature views: %s", views)
    return views


def check_views(views: dict[str, list[str]], meta: dict) -> dict[str, list[str]]:
    """Validate configured views against the prepared data; returns them in model field order."""
    names = [f["name"] for f in meta["fields"]]
    seen: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for entity, fields in views.items():
        if entity not in meta["entities"]:
            raise ConfigError(f"features.views: '{entity}' is not an entity of the data (entities: {meta['entities']})")
        for name in fields:
            if name not in names:
                raise ConfigError(f"features.views.{entity}: no field '{name}' in the prepared data (fields: {names})")
            if name in seen:
                raise ConfigError(f"features.views: field '{name}' is in the views of both {seen[name]} and {entity}")
            seen[name] = entity
        if fields:
            out[entity] = [n for n in names if n in fields]
    return out


def resolve_views(
    con: duckdb.DuckDBPyConnection, meta: dict, configured: dict[str, list[str]] | None
) -> dict[str, list[str]]:
    """The configured views (checked) or, when ``features.views`` is null, the derived ones."""
    return derive_views(con, meta) if configured is None else check_views(configured, meta)
