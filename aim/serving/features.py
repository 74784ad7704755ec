"""Model input for one user × N candidate items, from online entity attributes and the request context.

Every model field comes from one place:

- the user entity's feature view (``serve.user_entity``): one lookup of the user's key, broadcast;
- the item entity's feature view (``serve.item_entity``): one lookup of all N candidate keys;
- the request's ``context`` (every other field: event-level fields and views of other entities):
  raw tokens mapped to ids with ``vocab.parquet`` (unknown token -> id 0); a field the context
  leaves out is a missing value, encoded as in training (the null token's id, 0 if it has none).
  A multi-hot context value lists its tokens separated by the source's separator (``|`` by default);
  a numeric context field takes its bucket token as stored in ``vocab.parquet`` (e.g. ``b12``).

Unknown users and items get id 0 and empty multi-hot lists (their OOV embeddings), as in training.
The lookups go to the Feast online store (:class:`FeastSource`, one call per entity per request)
or to an in-memory copy of the latest attribute values (:class:`MemorySource`, for benchmarks
and stores without Feast). Columns are filled with whole-array assignments; nothing loops over
candidates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.data.schema import NULL_TOKEN
from aim.errors import ConfigError, DataError
from aim.features.layout import FeatureManifest, feast_layout, read_manifest
from aim.features.online import online_attributes

Attributes = dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]
HEALTH_KEY = "__aim_health_check__"


class InvalidRequest(ValueError):
    """A request the service cannot score as sent (answered with HTTP 400 and this message)."""


class LookupFailed(RuntimeError):
    """The feature source did not answer (answered with HTTP 503)."""


class AttributeSource(Protocol):
    """Encoded attributes of entity keys: field -> int32 [n], multi-hot -> (ids, mask) [n, max_len]."""

    def attributes(self, entity: str, keys: Sequence[str]) -> Attributes: ...

    def ping(self) -> None:
        """Raise when the source cannot answer."""


class FeastSource:
    """Lookups in the Feast online store (store and manifest opened once)."""

    def __init__(self, params: Params):
        from aim.features.store import open_store

        self.manifest = read_manifest(feast_layout(params))
        self.store = open_store(params)

    def attributes(self, entity: str, keys: Sequence[str]) -> Attributes:
        """One ``get_online_features`` call for all ``keys``."""
        return online_attributes(self.store, self.manifest, entity, keys)

    def ping(self) -> None:
        """A lookup of a key that does not exist: it fails when the online store is unreachable."""
        self.attributes(self.manifest.views[0].entity, [HEALTH_KEY])


class MemorySource:
    """The latest attribute values of every entity key, held in arrays (row 0 = unknown key)."""

    def __init__(self, manifest: FeatureManifest, prepared: Path | str):
        from aim.features.prepared import connect_events

        self.manifest = manifest
        self.tables: dict[str, tuple[pd.Index, Attributes]] = {}
        con = connect_events(Path(prepared))
        try:
            for spec in manifest.views:
                self.tables[spec.entity] = self._load(con, spec.join_key, spec.fields)
        finally:
            con.close()

    @staticmethod
    def _load(con, join_key: str, fields: list[dict]) -> tuple[pd.Index, Attributes]:
        cols = ", ".join(f'"{f["name"]}"' for f in fields)
        frame = con.execute(
            f'SELECT "{join_key}" AS key, {cols} FROM events WHERE "{join_key}" IS NOT NULL '
            f'QUALIFY row_number() OVER (PARTITION BY "{join_key}" '
            'ORDER BY "timestamp" DESC, split_code DESC, split_pos DESC) = 1'
        ).df()
        index = pd.Index(frame["key"].astype(str))
        arrays: Attributes = {}
        for f in fields:
            values = frame[f["name"]]
            if f["kind"] == "multi_hot":
                width = f["max_len"]
                ids = np.zeros((len(frame) + 1, width), dtype=np.int32)
                mask = np.zeros((len(frame) + 1, width), dtype=np.uint8)
                for row, items in enumerate(values, start=1):  # once, at start-up
                    items = list(items if items is not None else [])[:width]
                    ids[row, : len(items)] = items
                    mask[row, : len(items)] = 1
                arrays[f["name"]] = (ids, mask)
            else:
                arrays[f["name"]] = np.concatenate([[0], values.fillna(0).to_numpy()]).astype(np.int32)
        return index, arrays

    def attributes(self, entity: str, keys: Sequence[str]) -> Attributes:
        """Rows of ``keys`` (unknown -> row 0) taken from the arrays."""
        index, arrays = self.tables[entity]
        rows = index.get_indexer(pd.Index([str(k) for k in keys])) + 1  # -1 (unknown) -> 0
        return {
            name: (value[0][rows], value[1][rows]) if isinstance(value, tuple) else value[rows]
            for name, value in arrays.items()
        }

    def ping(self) -> None:
        """Always reachable."""


def open_source(params: Params, lookup: str) -> AttributeSource:
    """``feast`` (the online store) or ``memory`` (latest values from the prepared data)."""
    if lookup == "feast":
        if not params.features.enabled:
            raise ConfigError(
                "serve.lookup is feast but features.enabled is false: run `aim features` with features enabled, "
                "or serve from memory with -S serve.lookup=memory"
            )
        return FeastSource(params)
    if lookup == "memory":
        return MemorySource(read_manifest(feast_layout(params)), params.path(params.data.output_dir))
    raise ConfigError(f"unknown serve.lookup '{lookup}': use feast or memory")


@dataclass
class ModelInput:
    """What a model takes: single-field ids [n, F] and multi-hot (ids, mask) pairs [n, L]."""

    ids: torch.Tensor
    multi_hot: list[tuple[torch.Tensor, torch.Tensor]]


def _context_vocab(vocab_path: Path, fields: list[str]) -> dict[str, dict[str, int]]:
    """Token -> id for each context field (from ``vocab.parquet``)."""
    if not fields:
        return {}
    if not vocab_path.exists():
        raise DataError(f"{vocab_path} is missing: rerun `aim prepare` (the service maps context tokens with it)")
    vocab = pd.read_parquet(vocab_path, columns=["field", "token", "id"])
    vocab = vocab[vocab["field"].isin(fields)]
    return {
        name: dict(zip(part["token"].astype(str), part["id"].astype(int), strict=True))
        for name, part in vocab.groupby("field")
    } | {name: {} for name in fields if name not in set(vocab["field"])}


class FeatureBuilder:
    """Turns (user id, candidate item ids, context) into a :class:`ModelInput` in model field order."""

    def __init__(
        self,
        fields: list[dict],
        views: Mapping[str, list[str]],
        user_entity: str,
        item_entity: str,
        context_vocab: Mapping[str, Mapping[str, int]],
        separators: Mapping[str, str] | None = None,
    ):
        self.user_entity, self.item_entity = user_entity, item_entity
        self.single = [f for f in fields if f["kind"] != "multi_hot"]
        self.multi = [f for f in fields if f["kind"] == "multi_hot"]
        user_fields, item_fields = set(views.get(user_entity, [])), set(views.get(item_entity, []))
        self.origin = {
            f["name"]: "user" if f["name"] in user_fields else "item" if f["name"] in item_fields else "context"
            for f in fields
        }
        self.context_fields = [f["name"] for f in fields if self.origin[f["name"]] == "context"]
        self.context_vocab = context_vocab
        self.separators = dict(separators or {})
        self.max_len = {f["name"]: f["max_len"] for f in self.multi}
        names = [f["name"] for f in self.single]
        self._cols = {
            kind: np.array([i for i, n in enumerate(names) if self.origin[n] == kind], dtype=np.int64)
            for kind in ("user", "item", "context")
        }
        self._names = {kind: [names[i] for i in cols] for kind, cols in self._cols.items()}

    def _context_ids(self, context: Mapping[str, str]) -> dict[str, int | list[int]]:
        unknown = sorted(set(context) - set(self.context_fields))
        if unknown:
            allowed = ", ".join(self.context_fields) or "none: every field comes from the feature store"
            raise InvalidRequest(
                f"context fields {unknown} are not event-level fields of the model (allowed: {allowed})"
            )
        out: dict[str, int | list[int]] = {}
        for name in self.context_fields:  # tokens as prepare made them; a missing value is the null token
            vocab = self.context_vocab.get(name, {})
            value = context.get(name)
            if name in self.max_len:
                text = (value or "").strip()
                tokens = text.split(self.separators.get(name, "|")) if text else [NULL_TOKEN]
                out[name] = [vocab.get(t, 0) for t in tokens][: self.max_len[name]]
            else:
                out[name] = vocab.get(NULL_TOKEN if value is None else value, 0)
        return out

    def build(
        self, source: AttributeSource, user_id: str, item_ids: Sequence[str], context: Mapping[str, str] | None = None
    ) -> tuple[ModelInput, float]:
        """The model input for ``user_id`` × ``item_ids`` (request order) and the lookup seconds."""
        n = len(item_ids)
        ctx = self._context_ids(context or {})
        started = time.perf_counter()
        try:
            user = source.attributes(self.user_entity, [user_id]) if self._uses("user") else {}
            items = source.attributes(self.item_entity, item_ids) if self._uses("item") else {}
        except Exception as exc:  # the store's own error types vary by backend
            raise LookupFailed(f"online feature lookup failed ({type(exc).__name__}: {exc})") from exc
        lookup = time.perf_counter() - started

        ids = np.zeros((n, len(self.single)), dtype=np.int64)
        if len(self._cols["user"]):
            ids[:, self._cols["user"]] = np.array([user[name][0] for name in self._names["user"]], dtype=np.int64)
        if len(self._cols["item"]):
            ids[:, self._cols["item"]] = np.stack([items[name] for name in self._names["item"]], axis=1)
        if len(self._cols["context"]):
            ids[:, self._cols["context"]] = np.array([ctx[name] for name in self._names["context"]])

        multi_hot = []
        for f in self.multi:  # a few fields, each one array
            name, origin = f["name"], self.origin[f["name"]]
            if origin == "item":
                mh_ids, mask = items[name]
            elif origin == "user":
                mh_ids, mask = (np.repeat(a[:1], n, axis=0) for a in user[name])
            else:
                values = ctx[name]
                mh_ids = np.zeros((n, f["max_len"]), dtype=np.int32)
                mask = np.zeros((n, f["max_len"]), dtype=np.uint8)
                mh_ids[:, : len(values)], mask[:, : len(values)] = values, 1
            multi_hot.append(
                (torch.from_numpy(np.ascontiguousarray(mh_ids)), torch.from_numpy(np.ascontiguousarray(mask)))
            )
        return ModelInput(torch.from_numpy(ids), multi_hot), lookup

    def _uses(self, origin: str) -> bool:
        """Whether any model field comes from ``origin`` (user / item)."""
        return bool(self._names[origin]) or any(self.origin[f["name"]] == origin for f in self.multi)


def feature_builder(params: Params, manifest: FeatureManifest) -> FeatureBuilder:
    """The builder for the current training data, the manifest's views and ``serve`` entities."""
    meta = PreparedData(params.training_dir()).meta
    cfg = params.serve
    for setting, entity in (("serve.user_entity", cfg.user_entity), ("serve.item_entity", cfg.item_entity)):
        if entity not in meta.get("entities", []):
            raise ConfigError(
                f"{setting} '{entity}' is not an entity of the data (entities: {meta.get('entities', [])}): "
                "set it to one of them, or name the entities in the data source"
            )
    if manifest.data_version != meta.get("data_version"):
        raise DataError(
            f"the feature store holds data version {manifest.data_version} but {params.training_dir()} is "
            f"{meta.get('data_version')}: rerun `aim features` so that both come from the same prepared data"
        )
    views = {spec.entity: spec.field_names for spec in manifest.views}
    fetched = set(views.get(cfg.user_entity, [])) | set(views.get(cfg.item_entity, []))
    context = [f["name"] for f in meta["fields"] if f["name"] not in fetched]
    separators = params.data.table.multi_hot if params.data.source == "table" and params.data.table else {}
    vocab = _context_vocab(params.path(params.data.output_dir) / "vocab.parquet", context)
    return FeatureBuilder(meta["fields"], views, cfg.user_entity, cfg.item_entity, vocab, separators)
