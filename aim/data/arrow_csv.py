"""Fast staging of a header-less delimited file: Arrow's CSV reader, chunk by chunk, into codes.

The result is no DuckDB table but one :class:`~aim.data.schema.CodedColumn` per column (an
int32 code per row plus the distinct values, see :func:`aim.data.encoding.dictionary_codes`),
which is what the rest of ``prepare`` needs: the row hash, the split and the encoders work
from codes, so the text is parsed once and hashed once per chunk, with nothing read back.

How it stays exactly DuckDB's reader (:func:`aim.data.reading.load_delimited`):

* The file is cut at line ends into chunks of :data:`CHUNK_BYTES`. Arrow parses a chunk with
  strict types (BIGINT as int64; VARCHAR and the label as text; only an empty field is
  NULL; no quoting). Arrow takes a value only where DuckDB reads the same value, and refuses
  (an error for the whole chunk) wherever the two could differ.
* A chunk Arrow refuses -- a wrong column count (an empty line included), text in an integer
  column, invalid UTF-8, a label other than 0/1, an empty not-null field, a carriage return --
  is parsed by DuckDB's reader instead, which quarantines its bad lines with their numbers in
  the whole file (DuckDB's line in the chunk plus the lines before it). A handful of bad lines
  among 10M costs one chunk's second parse, not a second pass over the file.
* What chunks cannot reproduce sends the whole file back to DuckDB (:func:`read_coded`
  returns None and the caller stages as before): a quote character anywhere (a quoted field
  may span lines), a byte-order mark, a layout with other types, no usable row at all, or an
  error from DuckDB (the whole-file read then raises its usual one-line error).

Known difference: DuckDB sometimes numbers a cast reject (a bad label or integer) a line or two
late, depending on what precedes it in the text it reads (seen in whole-file reads after an
earlier cast reject, and after an empty line). A chunk re-read gives DuckDB less context, so
such a line's number can differ from the whole-file read's (the chunk's is usually the true
line); column-count rejects and every good row are the same.

Rows come out in file order, with DuckDB-fallback chunks' rows in DuckDB's order; nothing
downstream depends on it (splits sort rows by content, see :mod:`aim.data.splits`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from aim.data.encoding import dictionary_codes, merge_codes
from aim.data.quarantine import QUARANTINE_TABLE
from aim.data.reading import LABEL_TYPE, ROW_HASH, load_delimited
from aim.data.schema import CodedColumn
from aim.errors import DataError

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 2**20  # bytes of text per chunk (a DuckDB fallback re-parses at most this much)
_ARROW_TYPES = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), LABEL_TYPE: pa.string()}
_LABELS = pa.array(["0", "1"])
_CHUNK_TABLE = "raw_chunk"

Parsed = dict[str, tuple[np.ndarray, pa.Array]]  # a chunk's columns as (codes, distinct values)


def chunks(path: Path, size: int) -> Iterator[tuple[bytes, int]]:
    """The file in pieces of about ``size`` bytes cut after a newline, with each one's first line number."""
    line = 1
    rest = b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(size)
            data = rest + block
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if block else len(data)
            if cut == 0:  # no line end in this much text: read on
                rest = data
                continue
            piece, rest = data[:cut], data[cut:]
            yield piece, line
            line += piece.count(b"\n")


def _lines(piece: bytes) -> int:
    return piece.count(b"\n") + (not piece.endswith(b"\n"))


def _codes(table: pa.Table, names: list[str], pool: ThreadPoolExecutor) -> Parsed:
    """Every column of ``table`` dictionary-coded, columns side by side on ``pool``."""
    jobs = {name: pool.submit(dictionary_codes, table.column(name)) for name in names}
    return {name: job.result() for name, job in jobs.items()}


def _arrow_chunk(
    piece: bytes, columns: dict[str, str], delimiter: str, not_null: list[str], pool: ThreadPoolExecutor
) -> Parsed | None:
    """Arrow's parse of one chunk as codes, or None where Arrow cannot stand in for DuckDB."""
    if b"\r" in piece:
        return None
    try:
        table = pcsv.read_csv(
            pa.py_buffer(piece),
            read_options=pcsv.ReadOptions(column_names=list(columns)),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={name: _ARROW_TYPES[typ] for name, typ in columns.items()},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != _lines(piece):
        return None
    if any(table.column(name).null_count for name in not_null):
        return None
    parsed = _codes(table, list(columns), pool)
    for name, typ in columns.items():
        if typ == LABEL_TYPE and not pc.all(pc.is_in(parsed[name][1], _LABELS)).as_py():
            return None
    return parsed


def _duckdb_chunk(
    con: duckdb.DuckDBPyConnection,
    piece: bytes,
    first_line: int,
    path: Path,
    columns: dict[str, str],
    delimiter: str,
    not_null: list[str],
    label_columns: set[str],
    pool: ThreadPoolExecutor,
) -> Parsed:
    """DuckDB's parse of one chunk (its bad lines quarantined as lines of ``path``), as codes."""
    with tempfile.TemporaryDirectory(prefix="aim-chunk-") as folder:
        chunk_file = Path(folder) / path.name
        chunk_file.write_bytes(piece)
        load_delimited(
            con,
            _CHUNK_TABLE,
            chunk_file,
            columns,
            delimiter=delimiter,
            header=False,
            not_null=not_null,
            label_columns=label_columns,
            source=path,
            line_offset=first_line - 1,
        )
    table = con.sql(f"SELECT * EXCLUDE ({ROW_HASH}) FROM {_CHUNK_TABLE}").to_arrow_table()
    con.execute(f"DROP TABLE {_CHUNK_TABLE}")
    table = table.cast(pa.schema([(name, _ARROW_TYPES[typ]) for name, typ in columns.items()]))
    return _codes(table, list(columns), pool)


def read_coded(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    columns: dict[str, str],
    *,
    delimiter: str,
    not_null: list[str] = (),
    label_columns: set[str] = frozenset(),
    threads: int = 1,
) -> dict[str, CodedColumn] | None:
    """Stage a header-less delimited file as coded columns (see the module docstring).

    Bad lines go to the quarantine table as DuckDB's reader would put them there. Returns None
    (with nothing quarantined) when the whole file must be read by DuckDB instead.
    """
    if any(typ not in _ARROW_TYPES for typ in columns.values()):
        return None
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            return None
    parts: list[Parsed] = []
    fallbacks = 0
    try:
        with ThreadPoolExecutor(threads) as pool:
            for piece, first_line in chunks(path, CHUNK_BYTES):
                if b'"' in piece:
                    raise _WholeFile("a quote character")
                parsed = _arrow_chunk(piece, columns, delimiter, list(not_null), pool)
                if parsed is None:
                    fallbacks += 1
                    parsed = _duckdb_chunk(
                        con, piece, first_line, path, columns, delimiter, list(not_null), set(label_columns), pool
                    )
                parts.append(parsed)
            if not sum(len(part[next(iter(columns))][0]) for part in parts):
                raise _WholeFile("no usable row")
            coded = {}
            for name in columns:  # one column at a time, its chunks released as it is merged
                codes, distinct = merge_codes([part.pop(name) for part in parts])
                coded[name] = CodedColumn(codes, distinct)
    except (_WholeFile, DataError) as exc:
        log.info("reading %s with DuckDB (%s)", path, exc)
        con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source_file = ?", [str(path)])
        return None
    if fallbacks:
        log.info(
            "%d of %d chunks of %s had lines Arrow could not take: DuckDB parsed them", fallbacks, len(parts), path
        )
    return coded


class _WholeFile(Exception):
    """The chunked read cannot reproduce DuckDB's on this file."""
