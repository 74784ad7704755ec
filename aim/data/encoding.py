"""From raw values to ids: vocabularies built on the training split only.

Every field's id 0 is its out-of-vocabulary id: values seen fewer than ``min_count`` times in
train, and values never seen in train, map there. Known values get ids 1..V in order of
descending train frequency (ties by token), so the vocabulary is deterministic.
Numeric fields become tokens first: ``log_square`` (v > 2 -> floor(ln(v)^2), else the value
itself, as the Criteo competition winners did) or ``quantile`` buckets fitted on train.

How a field is encoded, with no Python object per row and no join:

1. DuckDB hands the field's column over in row order as Arrow (:func:`value_sql`): the value
   (text or double) of a single-valued field, the list of tokens of a multi-hot one.
2. Arrow dictionary-encodes it: each row (each list element) gets the code of its distinct value.
3. Each *distinct value* gets its token (:func:`token_sql`: the text, the null token, or the
   numeric bucket), computed by DuckDB on the dictionary only; values with one token merge.
4. :func:`build_vocabulary`: train counts are one ``np.bincount`` of the training rows' codes;
   the vocabulary keeps tokens seen ``min_count`` times, sorted by (count desc, token), and a
   remap array gives each distinct value its id, so ``ids = remap[codes]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aim.config import NumericConfig
from aim.data.schema import NULL_TOKEN, FieldSpec


@dataclass
class Vocabulary:
    """A field's vocabulary: the token and train count of ids 1..V (id 0 is OOV)."""

    field: FieldSpec
    tokens: pa.Array  # string, token of id k at position k - 1
    counts: np.ndarray  # int64, train count of each token
    cardinality: int  # distinct train values before the min_count cut
    max_len: int = 1  # multi-hot: padded list length

    @property
    def size(self) -> int:
        """Number of ids including OOV id 0."""
        return len(self.tokens) + 1


def id_dtype(size: int) -> np.dtype:
    """The narrowest unsigned dtype holding ids 0..size-1 (int32 past 16 bits, as the arrays store)."""
    if size <= 1 << 8:
        return np.dtype(np.uint8)
    if size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


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


def quantile_bounds(con: duckdb.DuckDBPyConnection, train_values: pa.Array, buckets: int) -> list[float]:
    """Distinct inner quantile bounds of a numeric field's values on the training rows."""
    probs = [k / buckets for k in range(1, buckets)]
    relation = con.from_arrow(pa.table({"v": train_values}))
    (bounds,) = relation.aggregate(f"quantile_disc(CAST(v AS DOUBLE), {probs})").fetchall()[0]
    return sorted({float(b) for b in bounds or [] if b is not None})


def value_sql(field: FieldSpec) -> str:
    """SQL over ``raw`` giving what is dictionary-encoded per row: a value, or a list of tokens."""
    if field.kind == "categorical":
        return f"CAST({field.expr} AS VARCHAR)"
    if field.kind == "numeric":
        return f"CAST({field.expr} AS DOUBLE)"
    text = f"trim(CAST({field.expr} AS VARCHAR))"
    sep = field.separator.replace("'", "''")
    return f"CASE WHEN {text} IS NULL OR {text} = '' THEN ['{NULL_TOKEN}'] ELSE string_split({text}, '{sep}') END"


def token_sql(field: FieldSpec, numeric: NumericConfig, bounds: list[float] | None = None, column: str = "v") -> str:
    """SQL giving the token of one distinct value ``column`` (from :func:`value_sql`) of a field.

    Multi-hot list elements are tokens already.
    """
    if field.kind == "categorical":
        return f"COALESCE({column}, '{NULL_TOKEN}')"
    if field.kind == "numeric":
        if numeric.bucketing == "quantile":
            return quantile_sql(column, bounds or [])
        return log_square_sql(column)
    return column


def dictionary_codes(values: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary-encode a column: (int32 code per element, the distinct values; null is one of them).

    A column that is dictionary-typed already (chunks may carry different dictionaries) is
    unified rather than encoded again; its nulls get one more distinct value, a null.
    """
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values, null_encoding="encode")
        if values.num_chunks == 0:
            return np.zeros(0, dtype=np.int32), pa.array([], type=values.type.value_type)
        dictionary = values.chunk(values.num_chunks - 1).dictionary  # Arrow gives every chunk the final one
        if any(len(chunk.dictionary) != len(dictionary) for chunk in values.chunks):
            values = values.unify_dictionaries()  # in case a version gives each chunk its own
    elif values.num_chunks:
        values = values.unify_dictionaries()
    if values.num_chunks == 0:
        return np.zeros(0, dtype=np.int32), pa.array([], type=values.type.value_type)
    dictionary = values.chunk(0).dictionary
    indices = [chunk.indices for chunk in values.chunks]
    if values.null_count:
        indices = [pc.fill_null(chunk, len(dictionary)) for chunk in indices]
        dictionary = pa.concat_arrays([dictionary, pa.nulls(1, dictionary.type)])
    # Arrow's allocator holds the codes (a read-only view): it gives freed memory back to the
    # system, where glibc's heap would keep the holes that freed chunk codes leave (prepare's peak).
    codes = (indices[0] if len(indices) == 1 else pa.concat_arrays(indices)).to_numpy()
    return codes.astype(np.int32, copy=False), dictionary


def merge_codes(parts: list[tuple[np.ndarray, pa.Array]]) -> tuple[np.ndarray, pa.Array]:
    """One column from pieces coded separately: the pieces' distinct values merged, codes renumbered.

    ``parts`` holds each piece's (codes, distinct values) from :func:`dictionary_codes`; they
    are released (the list emptied) as the merged codes are filled in.
    """
    remap, distinct = dictionary_codes(pa.chunked_array([values for _, values in parts], type=parts[0][1].type))
    codes = np.empty(sum(len(c) for c, _ in parts), dtype=np.int32)
    row = start = 0
    parts.reverse()
    while parts:
        part_codes, values = parts.pop()
        np.take(remap[start : start + len(values)], part_codes, out=codes[row : row + len(part_codes)])
        row, start = row + len(part_codes), start + len(values)
    return codes, distinct


def distinct_tokens(
    con: duckdb.DuckDBPyConnection,
    field: FieldSpec,
    distinct: pa.Array,
    numeric: NumericConfig,
    bounds: list[float] | None = None,
) -> pa.Array:
    """The token of each distinct value, in the same order (DuckDB evaluates :func:`token_sql`)."""
    if field.kind == "multi_hot":
        return distinct
    relation = con.from_arrow(pa.table({"v": distinct})).project(f"{token_sql(field, numeric, bounds)} AS token")
    tokens = relation.to_arrow_table().column("token")
    if len(tokens) != len(distinct):  # a bug, not bad data
        raise RuntimeError(f"field {field.name}: {len(tokens)} tokens for {len(distinct)} values")
    return tokens.combine_chunks() if len(tokens) else pa.array([], type=pa.string())


def build_vocabulary(
    field: FieldSpec, tokens: pa.Array, train_counts: np.ndarray, min_count: int
) -> tuple[Vocabulary, np.ndarray]:
    """Keep the tokens seen ``min_count`` times or more in train (ids from 1, by frequency).

    ``tokens[k]`` is the token of distinct value ``k`` and ``train_counts[k]`` its train count.
    Returns the vocabulary and the id of every distinct value (int32, 0 = OOV).
    """
    null_tokens = pc.sum(pc.equal(tokens, NULL_TOKEN)).as_py() or 0
    token_of_value = None  # text values are their own tokens: only NULL and the literal null token collide
    unique, counts = tokens, np.asarray(train_counts, dtype=np.int64)
    if field.kind == "numeric" or null_tokens > 1:  # several values share a token (buckets, null)
        grouped = pc.dictionary_encode(tokens)
        token_of_value = grouped.indices.to_numpy().astype(np.int64, copy=False)
        unique = grouped.dictionary
        counts = np.bincount(token_of_value, weights=train_counts, minlength=len(unique)).astype(np.int64)
    kept = np.flatnonzero(counts >= max(min_count, 1))
    order = pc.sort_indices(
        pa.table({"count": counts[kept], "token": unique.take(pa.array(kept))}),
        sort_keys=[("count", "descending"), ("token", "ascending")],
    ).to_numpy()
    ranked = kept[order]
    token_id = np.zeros(len(unique), dtype=np.int32)
    token_id[ranked] = np.arange(1, len(ranked) + 1, dtype=np.int32)
    vocab = Vocabulary(field, unique.take(pa.array(ranked)), counts[ranked], int(np.count_nonzero(counts)))
    return vocab, token_id if token_of_value is None else token_id[token_of_value]
