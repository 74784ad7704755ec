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


def count_train_tokens(
    con: duckdb.DuckDBPyConnection, fields: list[FieldSpec], tokens: list[str], train_rows: str
) -> None:
    """Count every field's tokens on ``train_rows`` into temp table ``token_counts``.

    Single-valued fields are counted in one scan with GROUPING SETS (one hash table per field,
    the split rule evaluated once per row); multi-hot fields are unnested one by one.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE token_counts (field INTEGER, token VARCHAR, cnt BIGINT)")
    single = [i for i, f in enumerate(fields) if f.kind != "multi_hot"]
    if single:
        cols = [f"t{i}" for i in single]
        which = " ".join(f"WHEN GROUPING(t{i}) = 0 THEN {i}" for i in single)
        con.execute(
            f"""INSERT INTO token_counts
                SELECT CASE {which} END, COALESCE({", ".join(cols)}), count(*)
                FROM (SELECT {", ".join(f"{tokens[i]} AS t{i}" for i in single)} FROM {train_rows})
                GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in cols)})"""
        )
    for i, spec in enumerate(fields):
        if spec.kind == "multi_hot":
            con.execute(
                f"""INSERT INTO token_counts SELECT {i}, token, count(*)
                    FROM (SELECT unnest({tokens[i]}) AS token FROM {train_rows}) GROUP BY token"""
            )


def build_vocabulary(
    con: duckdb.DuckDBPyConnection,
    index: int,
    field: FieldSpec,
    tokens: str,
    min_count: int,
    max_len_cap: int,
    train_rows: str,
) -> Vocabulary:
    """Keep the field's train tokens seen ``min_count`` times or more (ids from 1, by frequency).

    Needs ``token_counts`` from :func:`count_train_tokens`. Rows are later matched to ids on
    ``key = hash(token)``: an integer join is faster than a string one, and a 64-bit collision
    between two tokens of one field is vanishingly rare.
    """
    table = f"vocab_{index}"
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS
            SELECT token, CAST(row_number() OVER (ORDER BY cnt DESC, token) AS INTEGER) AS id,
                   cnt AS count, hash(token) AS key
            FROM token_counts WHERE field = {index} AND cnt >= {int(min_count)}"""
    )
    (cardinality,) = con.execute(f"SELECT count(*) FROM token_counts WHERE field = {index}").fetchall()[0]
    (kept,) = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
    max_len = 1
    if field.kind == "multi_hot":
        (longest,) = con.execute(f"SELECT max(len({tokens})) FROM {train_rows}").fetchall()[0]
        max_len = max(1, min(int(longest or 1), max_len_cap))
    return Vocabulary(field, table, int(kept) + 1, int(cardinality), max_len)
