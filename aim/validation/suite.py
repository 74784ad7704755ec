"""The expectation suite of one prepared split, derived from ``meta.json`` and ``validation.*``.

What a split must satisfy (all real GX expectations):

- exactly the columns ``prepare`` writes (``split_pos``, ``label``, ``timestamp``, one
  ``raw_<entity>`` per entity, one column per field), with their types, and at least one row;
- ``label`` not null and in {0, 1}; its mean (the positive rate) strictly inside (0, 1) for
  train, within train's rate ± ``max_positive_rate_shift`` for valid and test;
- entity keys, ``split_pos``, ``timestamp`` and field ids not null;
- categorical / numeric ids in ``[0, vocab_size)`` and at most the field's OOV bound of them 0
  (out of vocabulary): ``oov_rate_overrides[field]``, else ``max_oov_rate``;
- multi-hot ids in ``[0, vocab_size)``, checked on one reduced id per row
  (:func:`aim.validation.batches.reduce_multi_hot`); their OOV share is not checked (it is a
  share of tokens, not of rows, and ``prepare``'s summary reports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import great_expectations as gx
import great_expectations.expectations as gxe

from aim.config import ValidateConfig
from aim.errors import ConfigError

# Column -> pandas type name that ExpectColumnValuesToBeOfType checks (parquet type in comments).
FIXED_COLUMNS = {"split_pos": "int64", "label": "uint8", "timestamp": "int64"}
ENTITY_TYPE = "str"  # parquet string
ID_TYPE = "int32"  # categorical and numeric fields; multi-hot fields are list<int32>


@dataclass(frozen=True)
class Bounds:
    """The ``validation.*`` limits the suite enforces."""

    max_positive_rate_shift: float
    max_oov_rate: float
    oov_rate_overrides: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: ValidateConfig) -> Bounds:
        """Take the bounds from params.yaml, refusing OOV bounds outside [0, 1]."""
        bad = {k: v for k, v in cfg.oov_rate_overrides.items() if not 0 <= v <= 1}
        if bad:
            raise ConfigError(f"validation.oov_rate_overrides must be shares in [0, 1]; got {bad}")
        return cls(cfg.max_positive_rate_shift, cfg.max_oov_rate, dict(cfg.oov_rate_overrides))

    def oov_bound(self, name: str) -> float:
        """Largest share of OOV ids (0) allowed in field ``name``."""
        return self.oov_rate_overrides.get(name, self.max_oov_rate)


def expected_columns(meta: dict) -> list[str]:
    """Every column a split's parquet file must have, in the order ``prepare`` writes them."""
    entities = [f"raw_{e}" for e in meta.get("entities", [])]
    return [*FIXED_COLUMNS, *entities, *(f["name"] for f in meta["fields"])]


def multi_hot_fields(meta: dict) -> list[str]:
    """Names of the multi-hot fields (list columns in parquet)."""
    return [f["name"] for f in meta["fields"] if f["kind"] == "multi_hot"]


def positive_rate_range(split: str, reference: float | None, shift: float) -> tuple[float, float, bool]:
    """(min, max, strict) for a split's positive rate.

    Train (or any split without a reference rate) only has to hold both classes: strictly
    inside (0, 1). Valid and test must stay within the train rate ± ``shift``.
    """
    if split == "train" or reference is None:
        return 0.0, 1.0, True
    return max(0.0, reference - shift), min(1.0, reference + shift), False


def _label(split: str, reference: float | None, shift: float) -> list[gxe.Expectation]:
    low, high, strict = positive_rate_range(split, reference, shift)
    note = (
        "positive rate strictly between 0 and 1 (both classes present)"
        if strict
        else f"positive rate within the train rate {reference:.4f} ± {shift:g} (validation.max_positive_rate_shift)"
    )
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(
            column="label", min_value=low, max_value=high, strict_min=strict, strict_max=strict, notes=note
        ),
    ]


def _single_field(spec: dict, bounds: Bounds) -> list[gxe.Expectation]:
    name, size = spec["name"], int(spec["vocab_size"])
    checks: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToBeOfType(column=name, type_=ID_TYPE),
        gxe.ExpectColumnValuesToNotBeNull(column=name),
        gxe.ExpectColumnValuesToBeBetween(
            column=name, min_value=0, max_value=size - 1, notes=f"encoded ids of a vocabulary of {size} (0 = OOV)"
        ),
    ]
    bound = bounds.oov_bound(name)
    if bound < 1:
        checks.append(
            gxe.ExpectColumnValuesToNotBeInSet(
                column=name,
                value_set=[0],
                mostly=round(1.0 - bound, 10),
                notes=f"share of out-of-vocabulary ids (0) at most {bound:g}",
            )
        )
    return checks


def _multi_hot_field(spec: dict) -> list[gxe.Expectation]:
    name, size = spec["name"], int(spec["vocab_size"])
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=name,
            min_value=0,
            max_value=size - 1,
            notes=(
                f"multi-hot ids of a vocabulary of {size}; checked on one id per row: the row's largest id, "
                "or its smallest when negative (empty lists are skipped)"
            ),
        )
    ]


def build_suite(name: str, meta: dict, split: str, bounds: Bounds, reference_rate: float | None) -> gx.ExpectationSuite:
    """The suite for ``split`` of the prepared data set described by ``meta``.

    ``reference_rate`` is the train split's positive rate (None when it could not be read).
    """
    rows = int(meta.get("splits", {}).get(split, 0))
    checks: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=expected_columns(meta), exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ]
    for column, kind in FIXED_COLUMNS.items():
        checks.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_=kind))
        if column != "label":
            checks.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    if rows:
        checks.append(gxe.ExpectColumnValuesToBeBetween(column="split_pos", min_value=0, max_value=rows - 1))
    checks += _label(split, reference_rate, bounds.max_positive_rate_shift)
    for entity in meta.get("entities", []):
        checks.append(gxe.ExpectColumnValuesToBeOfType(column=f"raw_{entity}", type_=ENTITY_TYPE))
        checks.append(gxe.ExpectColumnValuesToNotBeNull(column=f"raw_{entity}"))
    for spec in meta["fields"]:
        checks += _multi_hot_field(spec) if spec["kind"] == "multi_hot" else _single_field(spec, bounds)
    # Expectations go in through the constructor: ``suite.add_expectation`` on a suite whose name
    # is already stored in the current context writes the whole suite to disk once per call.
    return gx.ExpectationSuite(
        name=name, expectations=checks, meta={"data_version": meta.get("data_version"), "split": split}
    )
