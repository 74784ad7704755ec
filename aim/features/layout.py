"""Where the feature store's files live, and the manifest describing the exported views.

Under ``features.store_dir`` (default ``data/feast``)::

    sources/<entity>.parquet   one attribute table per entity (the FileSources)
    manifest.json              views, field kinds, ttl, time range, data version
    registry.db                Feast file registry (unless features.registry is a SQL URL)
    online.db                  SQLite online store (unless features.online_store is redis)

The manifest is what :mod:`aim.features.definitions` builds the Feast objects from, so the
pipeline and ``features/definitions.py`` (the ``feast`` CLI) build exactly the same objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aim.config import Params
from aim.errors import DataError

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class FeastLayout:
    """Paths of the feature store's files."""

    root: Path

    @property
    def sources(self) -> Path:
        """Folder of the exported attribute tables."""
        return self.root / "sources"

    def source(self, entity: str) -> Path:
        """The attribute table (FileSource) of ``entity``."""
        return self.sources / f"{entity}.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def registry(self) -> Path:
        return self.root / "registry.db"

    @property
    def online_db(self) -> Path:
        return self.root / "online.db"


def feast_layout(params: Params) -> FeastLayout:
    """The layout under ``features.store_dir`` (resolved against params.yaml's folder)."""
    return FeastLayout(params.path(params.features.store_dir).resolve())


@dataclass
class ViewSpec:
    """One entity's feature view: its fields (name, kind, max_len for multi-hot) and row count."""

    entity: str
    fields: list[dict]
    rows: int = 0

    @property
    def name(self) -> str:
        """Feature view name."""
        return f"{self.entity}_attributes"

    @property
    def join_key(self) -> str:
        """The raw entity key column (feature names must not collide with join keys)."""
        return f"raw_{self.entity}"

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @property
    def refs(self) -> list[str]:
        """Feature references ``view:field`` for Feast's retrieval calls."""
        return [f"{self.name}:{f['name']}" for f in self.fields]


@dataclass
class FeatureManifest:
    """What was exported: the views, their ttl and the data's time range (epoch seconds)."""

    project: str
    data_version: str
    ttl_days: int
    start: int
    end: int
    views: list[ViewSpec] = field(default_factory=list)

    def view(self, entity: str) -> ViewSpec:
        """The view of ``entity`` (DataError naming the entities that have one otherwise)."""
        for spec in self.views:
            if spec.entity == entity:
                return spec
        raise DataError(f"no feature view for entity '{entity}'; views exist for {[v.entity for v in self.views]}")

    def fingerprint(self, spec: ViewSpec) -> str:
        """Changes whenever the view's data or definition does (tags the FeatureView)."""
        text = json.dumps([self.data_version, self.ttl_days, spec.entity, spec.fields, spec.rows], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureManifest:
        raw = json.loads(text)
        raw["views"] = [ViewSpec(**v) for v in raw["views"]]
        return cls(**raw)


def write_manifest(layout: FeastLayout, manifest: FeatureManifest) -> None:
    """Write ``manifest.json`` atomically (replace, never a half-written file)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.manifest.with_name(f".{MANIFEST_FILE}.tmp-{os.getpid()}")
    tmp.write_text(manifest.to_json() + "\n")
    os.replace(tmp, layout.manifest)


def read_manifest(layout: FeastLayout) -> FeatureManifest:
    """Read ``manifest.json``; a DataError telling how to create it when it is missing."""
    if not layout.manifest.exists():
        raise DataError(f"{layout.manifest} does not exist: run `aim features` first (it exports the views)")
    return FeatureManifest.from_json(layout.manifest.read_text())
