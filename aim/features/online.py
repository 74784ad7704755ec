"""Encoded attribute ids for raw entity keys from the online store (for the scoring service).

Keys the online store does not know get id 0 (OOV) and empty multi-hot lists, as in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from aim.config import Params
from aim.data.arrays import pad_lists
from aim.features.layout import FeatureManifest, feast_layout, read_manifest

if TYPE_CHECKING:
    from feast import FeatureStore


def online_attributes(
    store: FeatureStore, manifest: FeatureManifest, entity: str, keys: Sequence[str]
) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """Field -> int32 ids [n] for each attribute of ``entity``; multi-hot -> padded (ids, mask) [n, max_len]."""
    spec = manifest.view(entity)
    keys = [str(k) for k in keys]
    got = store.get_online_features(features=spec.refs, entity_rows={spec.join_key: keys}).to_dict()
    out: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]] = {}
    for f in spec.fields:
        values = got[f["name"]]
        if f["kind"] == "multi_hot":
            lists = [list(v) if v is not None else [] for v in values]
            offsets = np.concatenate([[0], np.cumsum([len(v) for v in lists])]).astype(np.int64)
            flat = np.fromiter((x for v in lists for x in v), dtype=np.int32, count=int(offsets[-1]))
            ids, mask, _ = pad_lists(offsets, flat, f["max_len"])
            out[f["name"]] = (ids, mask)
        else:
            out[f["name"]] = np.array([0 if v is None else v for v in values], dtype=np.int32)
    return out


def lookup(params: Params, entity: str, keys: Sequence[str]) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """:func:`online_attributes` with the store and manifest of these params (opens the store each call)."""
    from aim.features.store import open_store

    return online_attributes(open_store(params), read_manifest(feast_layout(params)), entity, keys)
