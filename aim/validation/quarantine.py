"""Copy failing splits aside, with the reasons, so a person can inspect exactly what failed.

Layout: ``<quarantine_dir>/<data_version>-<UTC time>/`` holds ``<split>.parquet`` for each
failing split (byte copies), ``meta.json`` of the prepared data set, and ``reasons.json``
(per split: rows, positive rate, failed expectations with observed values; the data docs).
The prepared data itself is only read, never changed.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aim.data.arrays import META_FILE
from aim.data.atomic import publish, temp_path
from aim.validation.runner import SplitReport

REASONS_FILE = "reasons.json"


def _new_folder(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ... if a quarantine of the same second exists."""
    folder, k = root / name, 1
    while folder.exists():
        k += 1
        folder = root / f"{name}-{k}"
    return folder


def quarantine_splits(
    prepared: Path,
    quarantine_dir: Path,
    meta: dict,
    failed: list[SplitReport],
    docs_index: Path,
    now: datetime | None = None,
) -> Path:
    """Copy the failing splits' parquet files and their reasons into a new quarantine folder.

    The folder is built under a temp name and renamed in, so it is complete or absent.
    Returns the folder.
    """
    now = now or datetime.now(UTC)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = _new_folder(quarantine_dir, f"{meta.get('data_version', 'unknown')}-{now:%Y%m%dT%H%M%SZ}")
    build = temp_path(target)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    for report in failed:
        shutil.copy2(report.path, build / report.path.name)
    if (prepared / META_FILE).exists():
        shutil.copy2(prepared / META_FILE, build / META_FILE)
    reasons: dict[str, Any] = {
        "data_version": meta.get("data_version"),
        "source": meta.get("source"),
        "quarantined_at": now.isoformat(timespec="seconds"),
        "prepared_dir": str(prepared),
        "data_docs": str(docs_index),
        "splits": {r.split: {**r.to_dict(), "file": r.path.name} for r in failed},
    }
    (build / REASONS_FILE).write_text(json.dumps(reasons, indent=2) + "\n")
    publish(build, target)
    return target
