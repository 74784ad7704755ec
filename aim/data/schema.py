"""What a source stages in the warehouse: its fields, label, timestamp and entity columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

FieldKind = Literal["categorical", "numeric", "multi_hot"]

NULL_TOKEN = "__null__"  # a missing value is a category of its own (rare ones go to OOV)
OOV_ID = 0  # every field's id 0: values unseen in train or seen fewer than min_count times


@dataclass(frozen=True)
class FieldSpec:
    """One model field: ``expr`` is a SQL expression over the staged ``raw`` table."""

    name: str
    kind: FieldKind
    expr: str
    separator: str | None = None  # multi-hot token separator


@dataclass(frozen=True)
class PostCheck:
    """A row-level rule checked after loading: rows where ``bad_sql`` holds are quarantined."""

    bad_sql: str
    reason: str


@dataclass
class CodedColumn:
    """A staged column dictionary-coded: ``distinct[codes[i]]`` is row ``i``'s value."""

    codes: np.ndarray  # int32 [rows]
    distinct: pa.Array  # the distinct values (a null among them where the column has nulls)


@dataclass
class StagedSource:
    """A source loaded into table ``raw`` plus how to read model fields from it.

    A source parsed by Arrow (:mod:`aim.data.arrow_csv`) has no ``raw`` table: its columns are
    ``coded`` instead and ``row_hash`` holds what ``raw``'s row hash column would (fields are
    then plain columns, and there are no post-load checks, timestamp or entities).
    """

    name: str
    fields: list[FieldSpec]
    label_sql: str
    timestamp_sql: str | None
    entities: list[str]
    inputs: list[Path]
    rows_loaded: int
    checks: list[PostCheck] = field(default_factory=list)
    line_sql: str = "NULL"  # how to recover a source line/row number for post-check failures
    coded: dict[str, CodedColumn] | None = None
    row_hash: np.ndarray | None = None  # uint64 [rows]

    @property
    def single_fields(self) -> list[FieldSpec]:
        """Fields with one value per row (categorical and bucketed numeric), in order."""
        return [f for f in self.fields if f.kind != "multi_hot"]

    @property
    def multi_hot_fields(self) -> list[FieldSpec]:
        """Fields holding a list of values per row."""
        return [f for f in self.fields if f.kind == "multi_hot"]
