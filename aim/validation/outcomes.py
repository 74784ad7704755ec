"""Plain records of expectation results: taken from GX, merged across chunks, told to a person.

Merging is exact for the expectations the suite uses: row-wise expectations add up their
element / missing / unexpected counts and apply ``mostly`` to the sums, the row count adds up,
a column mean is the row-weighted mean of the chunk means, and anything else (column set,
types) holds for the split when it holds for every chunk.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

SAMPLE = 20  # unexpected values kept per expectation
ROW_COUNT = "expect_table_row_count_to_be_between"
COLUMN_MEAN = "expect_column_mean_to_be_between"
COLUMN_SET = "expect_table_columns_to_match_set"


def _plain(value: Any) -> Any:
    """JSON-safe copy of a GX value (numpy scalars and arrays become Python ones)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Outcome:
    """One expectation's result on a split (or on one chunk of it)."""

    expectation: str
    column: str | None
    success: bool
    kwargs: dict[str, Any] = field(default_factory=dict)
    observed: Any = None
    elements: int | None = None
    missing: int = 0
    unexpected: int = 0
    sample: list[Any] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rows: int = 0

    @property
    def key(self) -> tuple[str, str | None]:
        """What identifies the expectation within a suite."""
        return self.expectation, self.column

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record, with ``observed_text`` for people."""
        return {**_plain(asdict(self)), "observed_text": observed_text(self)}


def _error(exception_info: dict) -> str | None:
    """The first exception message in a GX result's ``exception_info`` (flat or per metric)."""
    if not exception_info:
        return None
    if "raised_exception" in exception_info:
        return str(exception_info.get("exception_message")) if exception_info["raised_exception"] else None
    for info in exception_info.values():
        raised = getattr(info, "raised_exception", None)
        if raised is None and isinstance(info, dict):
            raised = info.get("raised_exception")
        if raised:
            message = getattr(info, "exception_message", None)
            return str(message if message is not None else info.get("exception_message"))
    return None


def outcomes_from(validation, rows: int) -> list[Outcome]:
    """Outcomes of a GX ``ExpectationSuiteValidationResult`` on a frame of ``rows`` rows."""
    outcomes = []
    for result in validation.results:
        config = result.expectation_config
        kwargs = {k: _plain(v) for k, v in config.kwargs.items() if k != "batch_id"}
        got = dict(result.result or {})
        outcomes.append(
            Outcome(
                expectation=config.type,
                column=kwargs.get("column"),
                success=bool(result.success),
                kwargs=kwargs,
                observed=_plain(got.get("observed_value")),
                elements=got.get("element_count"),
                missing=int(got.get("missing_count") or 0),
                unexpected=int(got.get("unexpected_count") or 0),
                sample=_plain(got.get("partial_unexpected_list") or [])[:SAMPLE],
                details=_plain(got.get("details") or {}),
                error=_error(result.exception_info),
                rows=rows,
            )
        )
    return outcomes


def _within(value: float | None, kwargs: dict[str, Any]) -> bool:
    """Whether ``value`` lies in the expectation's [min_value, max_value] (strict where asked)."""
    if value is None:
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (value <= low if kwargs.get("strict_min") else value < low):
        return False
    return not (high is not None and (value >= high if kwargs.get("strict_max") else value > high))


def _merge_pair(a: Outcome, b: Outcome) -> Outcome:
    """The outcome on the rows of both ``a`` and ``b`` (two chunks, same expectation)."""
    rows = a.rows + b.rows
    if a.error or b.error:
        return replace(a if a.error else b, success=False, rows=rows)
    if a.elements is not None and b.elements is not None:
        elements, missing, unexpected = a.elements + b.elements, a.missing + b.missing, a.unexpected + b.unexpected
        counted = elements - missing
        mostly = float(a.kwargs.get("mostly", 1.0))
        success = counted == 0 or (counted - unexpected) / counted >= mostly
        sample = (a.sample + b.sample)[:SAMPLE]
        return replace(
            a, success=success, elements=elements, missing=missing, unexpected=unexpected, sample=sample, rows=rows
        )
    if a.expectation == ROW_COUNT:
        observed = (a.observed or 0) + (b.observed or 0)
        return replace(a, success=_within(observed, a.kwargs), observed=observed, rows=rows)
    if a.expectation == COLUMN_MEAN:
        parts = [(o.observed, o.rows) for o in (a, b) if o.observed is not None and o.rows]
        weight = sum(n for _, n in parts)
        observed = sum(m * n for m, n in parts) / weight if weight else None
        return replace(a, success=_within(observed, a.kwargs), observed=observed, rows=rows)
    return replace(a if not a.success or b.success else b, success=a.success and b.success, rows=rows)


def merge(total: list[Outcome] | None, chunk: list[Outcome]) -> list[Outcome]:
    """Fold one chunk's outcomes into the running split-level outcomes (None = first chunk)."""
    if total is None:
        return list(chunk)
    by_key = {o.key: o for o in chunk}
    merged = [_merge_pair(o, by_key[o.key]) if o.key in by_key else o for o in total]
    known = {o.key for o in total}
    return merged + [o for o in chunk if o.key not in known]


def observed_text(outcome: Outcome) -> str:
    """What was observed, in words: counts and examples, the value, or the error."""
    if outcome.error:
        return f"error: {outcome.error.splitlines()[0]}"
    if outcome.elements is not None:
        counted = outcome.elements - outcome.missing
        share = outcome.unexpected / counted if counted else 0.0
        text = f"{outcome.unexpected} of {counted} values unexpected ({100 * share:.2f}%"
        mostly = outcome.kwargs.get("mostly")
        if mostly is not None and mostly < 1:
            text += f", at most {100 * (1 - mostly):.2f}% allowed"
        text += ")"
        examples = list(dict.fromkeys(repr(v) for v in outcome.sample))[:5]
        return text + (f", e.g. {', '.join(examples)}" if examples else "")
    if outcome.expectation == COLUMN_SET:
        mismatch = outcome.details.get("mismatched") or {}
        parts = [f"{kind} {sorted(cols)}" for kind, cols in sorted(mismatch.items()) if cols]
        return ", ".join(parts) if parts else f"columns {outcome.observed}"
    if outcome.expectation == COLUMN_MEAN and isinstance(outcome.observed, float):
        low, high = (outcome.kwargs.get(k) for k in ("min_value", "max_value"))
        bounds = "..".join("" if v is None else f"{v:.4f}" for v in (low, high))
        return f"mean {outcome.observed:.4f} (allowed {bounds})"
    if "type_" in outcome.kwargs:
        return f"type {outcome.observed} (expected {outcome.kwargs['type_']})"
    return f"observed {outcome.observed!r}"


def describe(outcome: Outcome) -> str:
    """``expectation(column): observed`` in one line."""
    target = f"({outcome.column})" if outcome.column else ""
    return f"{outcome.expectation}{target}: {observed_text(outcome)}"
