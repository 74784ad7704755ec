"""Fast staging of a header-less delimited file: Arrow's CSV reader, chunk by chunk, into codes.

The result is no DuckDB table but one :class:`~aim.data.schema.CodedColumn` per column (an
int32 code per row plus the distinct values, see :func:`aim.data.encoding.dictionary_codes`),
which is what the rest of ``prepare`` needs: the row hash, the split and the encoders work
from codes, so the text is parsed once and hashed once per chunk, with nothing read back.

Where the time goes at 10M Criteo rows on 2 cores (about 16 s of prepare's 30): the text is
read into one reused buffer (no fresh pages per chunk); Arrow parses a chunk on every core
while worker threads code the chunk before it; the chunks' codes live in Arrow's allocator,
which returns freed memory, so merging them (:func:`aim.data.encoding.merge_codes`) leaves no
heap holes behind (with numpy's copies, glibc's heap kept ~1.2 GB of them: 3.8 GB peak).

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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
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

CHUNK_BYTES = 128 * 2**20  # bytes of text per chunk (a DuckDB fallback re-parses at most this much)
_ARROW_TYPES = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), LABEL_TYPE: pa.string()}
_LABELS = pa.array(["0", "1"])
_CHUNK_TABLE = "raw_chunk"


@dataclass
class Chunk:
    """A piece of the file cut after a newline, and the number of its first line.

    ``text`` is a view of a buffer the reader reuses: it is valid until the next piece is read.
    Arrow's parse copies every value out of it (the staging tests, whose many small chunks
    would come out wrong otherwise, check this), so nothing parsed refers to it.
    """

    text: memoryview  # of the reader's bytearray
    first_line: int

    def has(self, byte: bytes) -> bool:
        """Whether ``byte`` occurs in the piece (a memchr in the buffer, no copy)."""
        return self.text.obj.find(byte, 0, len(self.text)) >= 0

    @cached_property
    def newlines(self) -> int:
        """Newline characters in the piece (counted block by block: small temporaries)."""
        values = np.frombuffer(self.text, dtype=np.uint8)
        step = 1 << 22
        return sum(int(np.count_nonzero(values[a : a + step] == 10)) for a in range(0, len(values), step))

    def lines(self) -> int:
        """Lines in the piece (the file's last one may lack its newline)."""
        return self.newlines + (len(self.text) > 0 and self.text[-1] != 10)


def chunks(path: Path, size: int) -> Iterator[Chunk]:
    """The file in pieces of about ``size`` bytes cut after a newline.

    The text is read into one buffer that every piece reuses (the tail after the last newline
    moves to its front): no new bytes object per piece, so its pages are faulted in once rather
    than once per piece, and unlike a memory map a file that changes meanwhile cannot crash it.
    """
    buffer = bytearray(size)
    filled, line = 0, 1
    with path.open("rb", buffering=0) as handle:
        while True:
            if filled == len(buffer):  # not one line end in a whole buffer: grow it and read on
                buffer = buffer + bytes(len(buffer))
            view = memoryview(buffer)
            end = filled + handle.readinto(view[filled:])
            if end == 0:
                return
            cut = buffer.rfind(b"\n", 0, end) + 1 if end > filled else end
            if cut == 0:
                filled = end
                continue
            chunk = Chunk(view[:cut], line)
            yield chunk
            line += chunk.newlines
            view[: end - cut] = view[cut:end]  # the unfinished line moves to the front
            filled = end - cut


def _submit_codes(table: pa.Table, pool: ThreadPoolExecutor) -> dict[str, Future]:
    """Dictionary-code every column of ``table`` on ``pool`` (columns side by side; not awaited)."""
    return {name: pool.submit(dictionary_codes, table.column(name)) for name in table.column_names}


def _arrow_table(piece: Chunk, columns: dict[str, str], delimiter: str, not_null: list[str]) -> pa.Table | None:
    """Arrow's parse of one chunk, or None where Arrow cannot stand in for DuckDB."""
    if piece.has(b"\r"):
        return None
    try:
        table = pcsv.read_csv(
            pa.py_buffer(piece.text),
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
    if table.num_rows != piece.lines():
        return None
    if any(table.column(name).null_count for name in not_null):
        return None
    for name, typ in columns.items():
        if typ == LABEL_TYPE and not pc.all(pc.is_in(table.column(name), _LABELS)).as_py():
            return None
    return table


def _duckdb_table(
    con: duckdb.DuckDBPyConnection,
    piece: Chunk,
    path: Path,
    columns: dict[str, str],
    delimiter: str,
    not_null: list[str],
    label_columns: set[str],
) -> pa.Table:
    """DuckDB's parse of one chunk (its bad lines quarantined as lines of ``path``)."""
    with tempfile.TemporaryDirectory(prefix="aim-chunk-") as folder:
        chunk_file = Path(folder) / path.name
        chunk_file.write_bytes(piece.text)
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
            line_offset=piece.first_line - 1,
        )
    table = con.sql(f"SELECT * EXCLUDE ({ROW_HASH}) FROM {_CHUNK_TABLE}").to_arrow_table()
    con.execute(f"DROP TABLE {_CHUNK_TABLE}")
    return table.cast(pa.schema([(name, _ARROW_TYPES[typ]) for name, typ in columns.items()]))


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

    While worker threads code one chunk's columns, the main thread reads and parses the next
    (Arrow's parse is itself parallel); at most two chunks are in flight, which bounds memory.
    Bad lines go to the quarantine table as DuckDB's reader would put them there. Returns None
    (with nothing quarantined) when the whole file must be read by DuckDB instead.
    """
    if any(typ not in _ARROW_TYPES for typ in columns.values()):
        return None
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            return None
    parts: list[dict[str, Future]] = []
    fallbacks = 0
    try:
        with ThreadPoolExecutor(threads) as pool:
            try:
                for piece in chunks(path, CHUNK_BYTES):
                    if piece.has(b'"'):
                        raise _WholeFile("a quote character")
                    table = _arrow_table(piece, columns, delimiter, list(not_null))
                    if table is None:
                        fallbacks += 1
                        table = _duckdb_table(con, piece, path, columns, delimiter, list(not_null), set(label_columns))
                    if len(parts) > 1:  # the chunk before last must be coded before this one is queued
                        wait(parts[-2].values())
                    parts.append(_submit_codes(table, pool))
                    del table
                done = [{name: job.result() for name, job in part.items()} for part in parts]
            finally:
                for part in parts:  # on an error: queued coding is dropped, not run
                    for job in part.values():
                        job.cancel()
            parts.clear()  # the futures hold the codes too: merging releases them only once these go
            if not sum(len(part[next(iter(columns))][0]) for part in done):
                raise _WholeFile("no usable row")
            coded = {}
            for name in columns:  # one column at a time, its chunks released as it is merged
                codes, distinct = merge_codes([part.pop(name) for part in done])
                coded[name] = CodedColumn(codes, distinct)
    except (_WholeFile, DataError) as exc:
        log.info("reading %s with DuckDB (%s)", path, exc)
        con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE source_file = ?", [str(path)])
        return None
    if fallbacks:
        log.info("%d of %d chunks of %s had lines Arrow could not take: DuckDB parsed them", fallbacks, len(done), path)
    return coded


class _WholeFile(Exception):
    """The chunked read cannot reproduce DuckDB's on this file."""
