"""From raw values to ids: tokens in SQL, vocabularies built on the training split only.

Every field's id 0 is its out-of-vocabulary id: values seen fewer than ``min_count`` times in
train, and values never seen in train, map there. Known values get ids 1..V in order of
descending train frequency (ties by token), so the vocabulary is deterministic.
Numeric fields become tokens first: ``log_square`` (v > 2 -> floor(ln(v)^2), else the value
itself, as the Criteo competition winners did) or ``quantile`` buckets fitted on train.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from aim.config import NumericConfig
from aim.data.schema import NULL_TOKEN, FieldSpec


@dataclass
class Vocabulary:
    """A field's vocabulary summary; the tokens live in warehouse table ``table``."""

    field: FieldSpec
    table: str  # columns: token, id, count, key (= hash(token), the join key)
    size: int  # ids including OOV id 0
    cardinality: int  # distinct train values before the min_count cut
    max_len: int = 1  # multi-hot: padded list length


def log_square_sql(value_sql: str) -> str:
    """Token of a number under log-square bucketing (NULL -> the null token)."""
    x = f"CAST({value_sql} AS DOUBLE)"
    return (
        f"CASE WHEN {x} IS NULL OR isnan({x}) THEN '{NULL_TOKEN}' "
        f"WHEN {x} > 2 THEN 'b' || CAST(floor(pow(ln({x}), 2)) AS BIGINT) "
        f"ELSE 'v' || CAST(floor({x}) AS BIGINT) END"
    )


def quantile_sql(value_sql: str, bounds: list[float]) -> str:
    """Token of a number given quantile bucket bounds (bucket k holds bounds[k-1] <= x < bounds[k])."""
    x = f"CAST({value_sql} AS DOUBLE)"
    whens = " ".join(f"WHEN {x} < {b!r} THEN 'q{k}'" for k, b in enumerate(bounds))
    return f"CASE WHEN {x} IS NULL OR isnan({x}) THEN '{NULL_TOKEN}' {whens} ELSE 'q{len(bounds)}' END"


def quantile_bounds(con: duckdb.DuckDBPyConnection, field: FieldSpec, buckets: int, train_rows: str) -> list[float]:
    """Distinct inner quantile bounds of a numeric field on the training split."""
    probs = [k / buckets for k in range(1, buckets)]
    (bounds,) = con.execute(
        f"SELECT quantile_disc(CAST({field.expr} AS DOUBLE), {probs}) FROM {train_rows}"
    ).fetchall()[0]
    return sorted({float(b) for b in bounds or [] if b is not None})


def token_sql(field: FieldSpec, numeric: NumericConfig, bounds: list[float] | None = None) -> str:
    """SQL giving the field's token (single fields) or list of tokens (multi-hot)."""
    if field.kind == "categorical":
        return f"COALESCE(CAST({field.expr} AS VARCHAR), '{NULL_TOKEN}')"
    if field.kind == "numeric":
        if numeric.bucketing == "quantile":
            return quantile_sql(field.expr, bounds or [])
        return log_square_sql(field.expr)
    text = f"trim(CAST({field.expr} AS VARCHAR))"
    sep = field.separator.replace("'", "''")
    return f"CASE WHEN {text} IS NULL OR {text} = '' THEN ['{NULL_TOKEN}'] ELSE string_split({text}, '{sep}') END"


def build_vocabulary(
    con: duckdb.DuckDBPyConnection,
    index: int,
    field: FieldSpec,
    tokens: str,
    min_count: int,
    max_len_cap: int,
    train_rows: str,
) -> Vocabulary:
    """Count tokens on ``train_rows`` and keep those seen ``min_count`` times or more (ids from 1).

    Rows are later matched to ids on ``key = hash(token)``: an integer join is faster than a
    string one, and a 64-bit collision between two tokens of one field is vanishingly rare.
    """
    table = f"vocab_{index}"
    if field.kind == "multi_hot":
        counted = f"SELECT unnest({tokens}) AS token FROM {train_rows}"
    else:
        counted = f"SELECT {tokens} AS token FROM {train_rows}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE counts AS
            SELECT token, count(*) AS cnt FROM ({counted}) GROUP BY token"""
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
            SELECT token, CAST(row_number() OVER (ORDER BY cnt DESC, token) AS INTEGER) AS id,
                   cnt AS count, hash(token) AS key
            FROM counts WHERE cnt >= {int(min_count)}"""
    )
    (cardinality,) = con.execute("SELECT count(*) FROM counts").fetchall()[0]
    (kept,) = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
    con.execute("DROP TABLE counts")
    max_len = 1
    if field.kind == "multi_hot":
        (longest,) = con.execute(f"SELECT max(len({tokens})) FROM {train_rows}").fetchall()[0]
        max_len = max(1, min(int(longest or 1), max_len_cap))
    return Vocabulary(field, table, int(kept) + 1, int(cardinality), max_len)
