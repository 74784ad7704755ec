"""The replay output on disk: ``windows/index.json`` and one labelled log per window.

Layout under ``replay.output_dir`` (written by ``aim replay``)::

    windows/index.json        [{"window": k, "start": epoch s, "end": epoch s, "rows": n,
                                "file": "window_k.parquet"}, ...]
    windows/window_<k>.parquet

A window log has one row per served (request, item): ``request_id`` (str), ``served_at``
(timestamp, UTC), ``event_time`` (int64 epoch s), ``window`` (int), ``user_id`` and ``item_id``
(raw str), ``arm`` ("control" | "treatment"), ``model_name``, ``model_version`` (str), ``score``
(float32 click probability), ``position`` (int, rank within the request by score, 0 = top),
``label`` (uint8 true click) and one int32 column per single-valued model field, named by the
field (the encoded id the model saw, 0 = out of vocabulary; multi-hot fields are omitted).

A model field named like a raw column (``user_id`` and ``item_id`` are fields of ML-100k and of
any table with those entities) cannot share the name. Either convention is read:

- the field takes the name (``user_id`` = the encoded int32 id) and the raw value moves to
  ``raw_user_id`` (as in the prepared parquet); or
- the raw value keeps the name (``user_id``, string) and the field column is ``field:user_id``.

Any field column may be written ``field:<name>``. The raw user (``raw_user_id``, else a string
``user_id``) is required: users are the bootstrap's resampling unit. Monitoring reads
:data:`LOG_COLUMNS`, the raw user and the field columns; the others may be absent.
:func:`read_window` returns the fields under their names and the raw user as :data:`USER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aim.errors import DataError
from aim.jsonfile import read_json

ARMS = ("control", "treatment")
WINDOWS_DIR = "windows"
INDEX_FILE = "index.json"
LOG_COLUMNS = ("request_id", "arm", "model_name", "model_version", "score", "position", "label")
USER = "__user"  # the raw user id in the frames read_window returns (no field is named so)
_INDEX_KEYS = ("window", "start", "end", "rows", "file")


@dataclass(frozen=True)
class WindowInfo:
    """One entry of ``index.json`` with the resolved path of its log."""

    window: int
    start: int
    end: int
    rows: int
    path: Path


def read_index(replay_dir: Path) -> list[WindowInfo]:
    """The windows listed in ``<replay_dir>/windows/index.json``, in window order.

    A missing or empty index, a malformed entry or a listed file that is missing is a
    :class:`DataError` that says to run ``aim replay``.
    """
    folder = replay_dir / WINDOWS_DIR
    index = folder / INDEX_FILE
    if not index.exists():
        raise DataError(f"no replay windows under {folder} ({INDEX_FILE} missing): run `aim replay` first")
    entries = read_json(index, DataError, "rerun `aim replay`")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{index} lists no windows: run `aim replay` first")
    windows = []
    for entry in entries:
        if not isinstance(entry, dict) or any(key not in entry for key in _INDEX_KEYS):
            raise DataError(f"{index}: every entry needs {', '.join(_INDEX_KEYS)}; got {entry!r}: rerun `aim replay`")
        path = folder / str(entry["file"])
        if not path.exists():
            raise DataError(f"{path} is listed in {INDEX_FILE} but missing: rerun `aim replay`")
        windows.append(
            WindowInfo(int(entry["window"]), int(entry["start"]), int(entry["end"]), int(entry["rows"]), path)
        )
    return sorted(windows, key=lambda w: w.window)


def _user_column(schema: pa.Schema, path: Path) -> str:
    """``raw_user_id`` when present, else ``user_id`` when it holds strings (the raw ids)."""
    if "raw_user_id" in schema.names:
        return "raw_user_id"
    if "user_id" in schema.names and not pa.types.is_integer(schema.field("user_id").type):
        return "user_id"
    raise DataError(
        f"{path} has no raw user id: write it as user_id (string), or as raw_user_id when user_id is a model "
        "field holding encoded ids; users are the unit the A/B bootstrap resamples"
    )


def _field_columns(schema: pa.Schema, fields: list[str], path: Path) -> dict[str, str]:
    """Column of each field: ``field:<name>`` when present, else ``<name>``; all integer-typed."""
    columns = {f: f"field:{f}" if f"field:{f}" in schema.names else f for f in fields}
    missing = [c for c in [*LOG_COLUMNS, *columns.values()] if c not in schema.names]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}: replay logs need {', '.join(LOG_COLUMNS)} and one "
            "int32 column per single-valued model field; rerun `aim replay` against the current model data"
        )
    not_ids = [c for c in columns.values() if not pa.types.is_integer(schema.field(c).type)]
    if not_ids:
        raise DataError(
            f"{path}: field column(s) {', '.join(not_ids)} must hold the encoded int32 ids the model saw "
            "(write the raw values as raw_<name>, or the ids as field:<name>)"
        )
    return columns


def read_window(info: WindowInfo, fields: list[str]) -> pd.DataFrame:
    """The log of one window: :data:`LOG_COLUMNS`, :data:`USER` and ``fields`` (int64), checked."""
    try:
        schema = pq.read_schema(info.path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{info.path} is not a readable parquet file ({exc}): rerun `aim replay`") from exc
    columns = _field_columns(schema, fields, info.path)
    user = _user_column(schema, info.path)
    raw = pd.read_parquet(info.path, columns=list(dict.fromkeys([*LOG_COLUMNS, user, *columns.values()])))
    if raw.empty:
        raise DataError(f"{info.path} holds no rows: rerun `aim replay` with more requests")
    frame = pd.DataFrame({c: raw[c] for c in LOG_COLUMNS})
    frame[USER] = raw[user].astype(str)
    for field, column in columns.items():
        frame[field] = raw[column].astype("int64")
    frame["arm"] = frame["arm"].astype(str)
    unknown = sorted(set(frame["arm"]) - set(ARMS))
    if unknown:
        raise DataError(f"{info.path}: unknown arm(s) {unknown}; arms are {', '.join(ARMS)}")
    if not frame["label"].isin([0, 1]).all():
        raise DataError(f"{info.path}: label must be 0/1 clicks")
    if frame["score"].isna().any():
        raise DataError(f"{info.path}: score holds missing values")
    frame["score"] = frame["score"].astype("float64")
    frame["label"] = frame["label"].astype("int64")
    frame["position"] = frame["position"].astype("int64")
    return frame
