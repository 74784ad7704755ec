"""Validate one prepared split with its suite, through a GX checkpoint, chunk by chunk if large."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx

from aim.validation.batches import iter_frames, split_rows
from aim.validation.context import ValidationContext
from aim.validation.outcomes import Outcome, describe, merge, outcomes_from

log = logging.getLogger(__name__)


@dataclass
class SplitReport:
    """What validating one split found."""

    split: str
    path: Path
    rows: int
    positive_rate: float | None
    chunks: int
    outcomes: list[Outcome]
    docs: Path | None

    @property
    def success(self) -> bool:
        """True when every expectation held on the whole split."""
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        """The expectations that did not hold."""
        return [o for o in self.outcomes if not o.success]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: verdict, rows, positive rate, failed expectations, docs page."""
        return {
            "success": self.success,
            "rows": self.rows,
            "positive_rate": self.positive_rate,
            "chunks": self.chunks,
            "expectations": len(self.outcomes),
            "failed": [_failure(o) for o in self.failed],
            "docs": str(self.docs) if self.docs else None,
        }


def _failure(outcome: Outcome) -> dict[str, Any]:
    """A failed expectation as recorded in metrics and reasons: name, column, observed, bounds."""
    record = outcome.to_dict()
    return {
        "expectation": outcome.expectation,
        "column": outcome.column,
        "observed": record["observed_text"],
        "observed_value": record["observed"],
        "unexpected": record["unexpected"] if outcome.elements is not None else None,
        "sample": record["sample"][:5],
        "kwargs": record["kwargs"],
    }


def validate_split(
    context: ValidationContext,
    split: str,
    path: Path,
    suite: gx.ExpectationSuite,
    multi_hot: list[str],
    chunk_rows: int,
) -> SplitReport:
    """Run ``suite`` on the split's parquet file ``path`` through the checkpoint ``prepared-<split>``.

    A split of at most ``chunk_rows`` rows is one GX batch. A larger one is read and validated
    chunk by chunk (each chunk one checkpoint run and one data docs page, named
    ``<split>-chunk-<k>``), so memory holds one chunk at a time; the split's verdict comes from
    the chunk results merged exactly (:func:`aim.validation.outcomes.merge`): counts add up,
    the positive rate is the row-weighted mean. A chunk's own page may therefore show a
    positive rate or OOV share outside its bound while the whole split is within it.
    """
    rows = split_rows(path)
    chunked = rows > chunk_rows
    checkpoint = context.checkpoint(f"prepared-{split}", suite)
    total: list[Outcome] | None = None
    positives = seen = chunks = 0
    has_label = False
    docs: Path | None = None
    failing_page_found = False
    for k, frame in enumerate(iter_frames(path, chunk_rows, multi_hot), 1):
        run_name = f"{split}-chunk-{k}" if chunked else split
        validation, page = context.run(checkpoint, frame, run_name)
        if docs is None or (not validation.success and not failing_page_found):
            docs = page
            failing_page_found = not validation.success
        if "label" in frame.columns:
            has_label = True
            positives += int((frame["label"] == 1).sum())
        seen += len(frame)
        chunks = k
        total = merge(total, outcomes_from(validation, len(frame)))
        if chunked:
            log.info("validated %s chunk %d (%d of %d rows)", split, k, seen, rows)
    order = {(e.expectation_type, getattr(e, "column", None)): i for i, e in enumerate(suite.expectations)}
    outcomes = sorted(total or [], key=lambda o: order.get(o.key, len(order)))  # GX reorders; use the suite's
    rate = positives / seen if has_label and seen else None
    report = SplitReport(split, path, rows, rate, chunks, outcomes, docs)
    if report.success:
        log.info("%s: %d rows passed %d expectations", split, rows, len(report.outcomes))
    else:
        log.warning("%s: %d of %d expectations failed", split, len(report.failed), len(report.outcomes))
        for outcome in report.failed:
            log.warning("  %s", describe(outcome))
    return report
