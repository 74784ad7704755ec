"""The Feast objects, built in code from the manifest: one implementation for the pipeline and
for ``features/definitions.py`` (what ``feast apply`` / ``feast ui`` / ``feast serve`` load).

Per entity: an ``Entity`` whose join key is the raw key column (``raw_user_id``: the encoded
``user_id`` field is itself a feature, and feature names must not collide with join keys), a
``FileSource`` over the exported parquet (absolute path: the DuckDB offline store reads it
relative to the working directory, not the repo), and an online ``FeatureView`` with the
configured ttl. Ids are Int32 (as in the prepared parquet); multi-hot fields are
``Array(Int32)``, which round-trips through the DuckDB offline store and the SQLite online store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Int32, String

from aim.features.export import TIMESTAMP_COLUMN
from aim.features.layout import FeastLayout, FeatureManifest, ViewSpec


@dataclass
class FeastObjects:
    """Everything one ``store.apply`` registers."""

    entities: list[Entity]
    sources: list[FileSource]
    views: list[FeatureView]

    def all(self) -> list:
        return [*self.entities, *self.sources, *self.views]

    def by_name(self) -> dict[str, object]:
        """Python-identifier names for module globals (``feast apply`` scans module attributes)."""
        out: dict[str, object] = {}
        for kind, objects in (("entity", self.entities), ("source", self.sources), ("view", self.views)):
            for obj in objects:
                out[f"{kind}_{obj.name}"] = obj
        return out


def _dtype(field: dict):
    return Array(Int32) if field["kind"] == "multi_hot" else Int32


def view_objects(
    spec: ViewSpec, manifest: FeatureManifest, layout: FeastLayout
) -> tuple[Entity, FileSource, FeatureView]:
    """Entity, FileSource and FeatureView of one entity's attributes."""
    entity = Entity(
        name=spec.entity,
        join_keys=[spec.join_key],
        value_type=ValueType.STRING,
        description=f"raw {spec.entity} key of the prepared data",
    )
    source = FileSource(
        name=f"{spec.entity}_source",
        path=str(layout.source(spec.entity)),
        timestamp_field=TIMESTAMP_COLUMN,
        description=f"{spec.entity} attributes, stamped at the first event with each value",
    )
    features = [Field(name=f["name"], dtype=_dtype(f)) for f in spec.fields]
    view = FeatureView(
        name=spec.name,
        entities=[entity],
        ttl=timedelta(days=manifest.ttl_days),
        schema=[Field(name=spec.join_key, dtype=String), *features],
        source=source,
        online=True,
        description=f"encoded attribute ids of {spec.entity} (0 = out of vocabulary)",
        tags={"aim_fingerprint": manifest.fingerprint(spec), "data_version": manifest.data_version},
    )
    return entity, source, view


def feast_objects(manifest: FeatureManifest, layout: FeastLayout) -> FeastObjects:
    """Every Feast object the manifest describes."""
    built = [view_objects(spec, manifest, layout) for spec in manifest.views]
    return FeastObjects([b[0] for b in built], [b[1] for b in built], [b[2] for b in built])
