"""Stage ``validate``: every prepared split through its Great Expectations suite.

Reads ``data.output_dir`` (``meta.json`` and ``parquet/<split>.parquet``) and never changes it.
Writes GX data docs to ``validation.docs_dir`` (open its ``index.html``) and the figures to
``<metrics>/validate.json``. When a split fails, its parquet file is copied with ``reasons.json``
to ``validation.quarantine_dir/<data_version>-<UTC time>/`` and :class:`ValidationFailed` stops
the pipeline, so the features stage never reads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.data.atomic import temp_path
from aim.data.splits import SPLITS
from aim.errors import ValidationFailed
from aim.validation.batches import positive_share, split_rows
from aim.validation.context import ValidationContext
from aim.validation.outcomes import COLUMN_SET, describe
from aim.validation.quarantine import quarantine_splits
from aim.validation.runner import SplitReport, validate_split
from aim.validation.suite import Bounds, build_suite, multi_hot_fields

log = logging.getLogger(__name__)

METRICS_FILE = "validate.json"
MAX_LISTED = 8  # failed expectations named per split in the error message


def read_meta(prepared: Path) -> dict:
    """``meta.json`` of the prepared data set, or a DataError saying to run ``aim prepare``."""
    return PreparedData(prepared).meta


def split_files(prepared: Path) -> dict[str, Path]:
    """The parquet file of every split; a missing or unreadable one is a DataError."""
    files = {split: prepared / "parquet" / f"{split}.parquet" for split in SPLITS}
    for path in files.values():
        split_rows(path)
    return files


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def _named_failures(report: SplitReport) -> list[str]:
    """Failed expectations in words; those that could not run on a missing column count as one."""
    missing: set[str] = set()
    for outcome in report.failed:
        if outcome.expectation == COLUMN_SET:
            missing |= set((outcome.details.get("mismatched") or {}).get("missing") or [])
    named = [describe(o) for o in report.failed if o.column not in missing]
    skipped = sum(o.column in missing for o in report.failed)
    if skipped:
        named.append(f"{skipped} expectation(s) on the missing column(s) {', '.join(sorted(missing))} could not run")
    return named


def failure_message(failed: list[SplitReport], quarantine: Path, index: Path) -> str:
    """One line: each failing split and expectation (type, column, observed), where to look, what to do."""
    parts = []
    for report in failed:
        listed_all = _named_failures(report)
        named = listed_all[:MAX_LISTED]
        more = len(listed_all) - len(named)
        listed = "; ".join(named) + (f"; and {more} more (see reasons.json)" if more > 0 else "")
        parts.append(
            f"split {report.split} failed {len(report.failed)} of {len(report.outcomes)} expectations: {listed}"
        )
    return (
        f"validation failed: {' | '.join(parts)}. The failing split file(s) were copied to {quarantine} "
        f"(with reasons.json); data docs: {index}. Nothing downstream may use this data: fix the source data "
        "(or, if the change is expected, the validation.* bounds in params.yaml), rerun `aim prepare`, "
        "then `aim validate`"
    )


def run_validate(params: Params) -> dict:
    """Validate train, valid and test; write metrics and data docs; quarantine and stop on failure.

    Returns ``{"summary": one line, "splits": {split: report}, "docs": index.html path}``.
    Raises :class:`ValidationFailed` (after writing ``validate.json`` and the quarantine copy)
    when any split fails.
    """
    cfg = params.validation
    prepared = params.path(params.data.output_dir)
    meta = read_meta(prepared)
    files = split_files(prepared)
    bounds = Bounds.from_config(cfg)
    reference = positive_share(files["train"], cfg.chunk_rows)
    if reference is None:
        log.warning("train has no readable labels: valid/test positive rates are only checked to be in (0, 1)")
    context = ValidationContext(params.path(cfg.docs_dir))
    multi_hot = multi_hot_fields(meta)
    reports = {
        split: validate_split(
            context,
            split,
            files[split],
            build_suite(f"prepared-{split}", meta, split, bounds, reference),
            multi_hot,
            cfg.chunk_rows,
        )
        for split in SPLITS
    }
    index = context.ensure_index()
    failed = [r for r in reports.values() if not r.success]
    quarantine = quarantine_splits(prepared, params.path(cfg.quarantine_dir), meta, failed, index) if failed else None
    splits = {split: r.to_dict() for split, r in reports.items()}
    _write_json(
        params.path(params.metrics) / METRICS_FILE,
        {
            "success": not failed,
            "data_version": meta.get("data_version"),
            "reference_positive_rate": reference,
            "splits": splits,
            "docs": str(index),
            "quarantine": str(quarantine) if quarantine else None,
        },
    )
    log.info("data docs: %s", index)
    if failed:
        raise ValidationFailed(failure_message(failed, quarantine, index))
    counts = ", ".join(f"{s} {r.rows} rows" for s, r in reports.items())
    expectations = sum(len(r.outcomes) for r in reports.values())
    summary = f"validation passed ({expectations} expectations on {counts}); data docs: {index}"
    return {"summary": summary, "splits": splits, "docs": str(index)}
