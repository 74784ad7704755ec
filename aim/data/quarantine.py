"""Rows that cannot be used: collected in the warehouse, written out as a CSV a person can read.

Nothing is dropped silently: every rejected line keeps its file, line number, reason and text.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

QUARANTINE_TABLE = "quarantine"


def create_quarantine_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the (empty) quarantine table in the warehouse."""
    con.execute(
        f"""CREATE OR REPLACE TABLE {QUARANTINE_TABLE} (
            source_file VARCHAR, line BIGINT, row_index BIGINT, reason VARCHAR, content VARCHAR)"""
    )


def collect_csv_rejects(
    con: duckdb.DuckDBPyConnection, path: Path, label_columns: set[str], line_offset: int = 0
) -> int:
    """Move DuckDB's reject tables (one scan of ``path``) into the quarantine table.

    Several errors on one line become one row with the reasons joined by '; '. ``line_offset``
    is added to DuckDB's line numbers (when ``path`` holds a slice of a larger file, whose name
    ``path`` then is). Returns the number of quarantined lines.
    """
    label_list = ", ".join(f"'{c}'" for c in sorted(label_columns)) or "NULL"
    con.execute(
        f"""
        INSERT INTO {QUARANTINE_TABLE}
        SELECT ?, line + ?, NULL,
               string_agg(DISTINCT reason, '; ' ORDER BY reason),
               any_value(trim(csv_line, E'\\r\\n'))
        FROM (
            SELECT line, csv_line,
                CASE
                  WHEN error_type = 'CAST' AND column_name IN ({label_list})
                    THEN 'label column ' || column_name || ' must be 0 or 1'
                  WHEN error_type = 'CAST'
                    THEN 'column ' || column_name || ': '
                         || regexp_replace(error_message, '^Error when converting column "[^"]*"\\. ', '')
                  ELSE lower(CAST(error_type AS VARCHAR)) || ' (' || error_message || ')'
                END AS reason
            FROM reject_errors
        )
        GROUP BY line
        """,
        [str(path), line_offset],
    )
    (count,) = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchall()[0]
    con.execute("DELETE FROM reject_errors")
    con.execute("DELETE FROM reject_scans")
    return int(count)


def quarantine_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source_file: str,
    predicate: str,
    reason_sql: str,
    line_sql: str = "NULL",
) -> None:
    """Quarantine staged rows that fail a post-load check (``predicate`` true = bad row)."""
    con.execute(
        f"""INSERT INTO {QUARANTINE_TABLE}
            SELECT ?, {line_sql}, rowid, {reason_sql}, CAST(to_json(r) AS VARCHAR)
            FROM {table} r WHERE {predicate}""",
        [source_file],
    )


def quarantine_count(con: duckdb.DuckDBPyConnection) -> int:
    """Number of quarantined rows so far."""
    return int(con.execute(f"SELECT count(*) FROM {QUARANTINE_TABLE}").fetchall()[0][0])


def write_quarantine_csv(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write the quarantine table to ``path`` (CSV with a header, ordered by file and line)."""
    con.execute(
        f"COPY (SELECT * FROM {QUARANTINE_TABLE} ORDER BY source_file, line, row_index) "
        f"TO '{path}' (HEADER, DELIMITER ',')"
    )
