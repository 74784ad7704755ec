"""Load delimited text and parquet files into the DuckDB warehouse, quarantining bad lines.

DuckDB's CSV reader parses in parallel and, with ``store_rejects``, records every line it
cannot read (wrong column count, a value of the wrong type, a label that is not 0 or 1 via an
ENUM type) with its line number, so good rows load at full speed and bad ones are kept.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from aim.data.quarantine import collect_csv_rejects
from aim.errors import DataError

LABEL_TYPE = "aim_label"  # ENUM('0', '1'): any other value is a reject with its line number
# Every staged table carries a hash of its row: with insertion order off (much faster parallel
# loading), rows are ordered by (timestamp, row hash), which is the same on every run.
ROW_HASH = "_row_hash"


def with_row_hash(relation_sql: str) -> str:
    """SELECT every column of ``relation_sql`` plus the row hash column."""
    return f"SELECT t.*, hash(t) AS {ROW_HASH} FROM ({relation_sql}) t"


def ensure_label_type(con: duckdb.DuckDBPyConnection) -> None:
    """Create the 0/1 label ENUM type once per database."""
    exists = con.execute("SELECT count(*) FROM duckdb_types() WHERE type_name = ?", [LABEL_TYPE]).fetchall()[0][0]
    if not exists:
        con.execute(f"CREATE TYPE {LABEL_TYPE} AS ENUM ('0', '1')")


def check_input_file(path: Path, what: str) -> None:
    """Stop with a one-line error when an input file is missing or empty."""
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist: put the file there or fix its path in params.yaml")
    if path.is_dir():
        raise DataError(f"{what} path {path} is a folder, not a file: point params.yaml at the file")
    if path.stat().st_size == 0:
        raise DataError(f"{what} file {path} is empty: nothing to prepare")


def read_header(path: Path, delimiter: str) -> list[str]:
    """The column names of a delimited file's first line (``name:type`` suffixes removed)."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n")
    if not first.strip():
        raise DataError(f"{path} has an empty first line where the header should be")
    return [name.strip().strip('"').split(":", 1)[0] for name in first.split(delimiter)]


def require_columns(path: Path, available: list[str], required: list[str]) -> None:
    """Stop with an error naming every required column the file lacks."""
    missing = [c for c in required if c not in available]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)} named in params.yaml; it has: {', '.join(available)}"
        )


def read_delimited(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: dict[str, str],
    *,
    delimiter: str,
    header: bool,
    not_null: list[str] = (),
    label_columns: set[str] = frozenset(),
    what: str = "input",
) -> tuple[int, int]:
    """Load ``path`` into ``table`` with the given column types, in file order.

    ``columns`` lists every column of the file, in order. Columns in ``not_null`` must hold a
    value (an empty one is a reject). Returns (rows loaded, lines quarantined).
    """
    check_input_file(path, what)
    rejected = load_delimited(
        con, table, path, columns, delimiter=delimiter, header=header, not_null=not_null, label_columns=label_columns
    )
    (rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
    if rows == 0:
        hint = " (all lines were rejected: check the delimiter and the column layout)" if rejected else ""
        raise DataError(f"{path} holds no usable rows{hint}")
    return int(rows), rejected


def load_delimited(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    columns: dict[str, str],
    *,
    delimiter: str,
    header: bool,
    not_null: list[str] = (),
    label_columns: set[str] = frozenset(),
    source: Path | None = None,
    line_offset: int = 0,
) -> int:
    """DuckDB's parse of ``path`` into ``table`` (rejects quarantined); returns the lines quarantined.

    When ``path`` holds lines of a larger file, ``source`` names that file and ``line_offset``
    is the number of its lines before them (the quarantine reports lines of ``source``).
    """
    ensure_label_type(con)
    column_sql = "{" + ", ".join(f"'{name}': '{typ}'" for name, typ in columns.items()) + "}"
    options = [
        f"delim = '{_escape(delimiter)}'",
        f"header = {str(header).lower()}",
        f"columns = {column_sql}",
        "auto_detect = false",
        "quote = '\"'",
        "store_rejects = true",
        "ignore_errors = true",
    ]
    if not_null:
        options.append("force_not_null = [" + ", ".join(f"'{c}'" for c in not_null) + "]")
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS "
            + with_row_hash(f"SELECT * FROM read_csv('{_escape(str(path))}', {', '.join(options)})")
        )
    except duckdb.Error as exc:
        raise DataError(f"cannot read {source or path}: {exc}") from exc
    return collect_csv_rejects(con, source or path, set(label_columns), line_offset)


def read_parquet_table(con: duckdb.DuckDBPyConnection, table: str, path: Path, required: list[str]) -> int:
    """Load a parquet file into ``table`` (with ``file_row_number``), checking required columns."""
    check_input_file(path, "parquet")
    try:
        available = [
            row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{_escape(str(path))}')").fetchall()
        ]
    except duckdb.Error as exc:
        raise DataError(f"{path} is not a readable parquet file: {exc}") from exc
    require_columns(path, available, required)
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS "
        + with_row_hash(f"SELECT * FROM read_parquet('{_escape(str(path))}', file_row_number = true)")
    )
    (rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
    if rows == 0:
        raise DataError(f"{path} holds no rows")
    return int(rows)


def _escape(text: str) -> str:
    return text.replace("'", "''")
