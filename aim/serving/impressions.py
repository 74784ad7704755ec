"""The impression log: every scored candidate, buffered in memory and written in batches to DuckDB.

Table ``impressions`` in ``serve.impressions`` (one row per candidate of every request)::

    request_id     VARCHAR      the request's id (sent by the client, or a generated uuid4 hex)
    served_at      TIMESTAMPTZ  when the request was scored (UTC)
    user_id        VARCHAR      raw user key as sent
    item_id        VARCHAR      raw item key as sent
    arm            VARCHAR      control | treatment
    model_name     VARCHAR      registered model name (e.g. deepfm)
    model_version  VARCHAR      registry version (e.g. v0003)
    score          DOUBLE       click probability
    position       INTEGER      0-based index of the item in the request's item_ids
    rank           INTEGER      1-based rank of the score within the request (1 = highest)

DuckDB allows one writing process per file, so the service is the only writer and a single
background thread does the writes: when ``serve.flush_rows`` rows are buffered, on
``POST /flush`` (synchronously) and at shutdown. The file is opened only while writing, so other
processes can read it between flushes; a write that finds the file locked is retried, and rows
that still cannot be written at shutdown go to a parquet file beside it (logged), never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aim.errors import DataError

log = logging.getLogger(__name__)

TABLE = "impressions"
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("arm", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("score", pa.float64()),
        ("position", pa.int32()),
        ("rank", pa.int32()),
    ]
)
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    request_id VARCHAR NOT NULL,
    served_at TIMESTAMPTZ NOT NULL,
    user_id VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    arm VARCHAR NOT NULL,
    model_name VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    position INTEGER NOT NULL,
    rank INTEGER NOT NULL
)"""
LOCK_RETRY_SECONDS = 10.0


def _connect(path: Path, retry_seconds: float = LOCK_RETRY_SECONDS) -> duckdb.DuckDBPyConnection:
    """A read-write connection, retried while another process holds the file's lock."""
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if time.monotonic() >= deadline:
                raise DataError(
                    f"cannot open the impression log {path} for writing ({exc}): another process holds it; "
                    "close readers of the file or point serve.impressions at another file"
                ) from exc
            time.sleep(0.2)


def ensure_table(path: Path) -> None:
    """Create the file and table if needed; a DataError when an existing table has other columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path)
    try:
        con.execute(DDL)
        columns = [row[0] for row in con.execute(f"DESCRIBE {TABLE}").fetchall()]
    finally:
        con.close()
    if columns != SCHEMA.names:
        raise DataError(
            f"table {TABLE} in {path} has columns {columns}, expected {SCHEMA.names}: move the old file "
            "away or point serve.impressions at a new file"
        )


class ImpressionLog:
    """Buffered impressions with one writer thread (:meth:`start`/:meth:`close`) and :meth:`flush`."""

    def __init__(self, path: Path | str, flush_rows: int):
        self.path, self.flush_rows = Path(path), flush_rows
        self._pending: list[dict[str, np.ndarray | list]] = []
        self._rows = 0
        self.written = 0
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time: the single writer
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ensure_table(self.path)

    @property
    def buffered(self) -> int:
        """Rows waiting for the next write."""
        return self._rows

    def add(
        self,
        request_id: str,
        user_id: str,
        item_ids: Sequence[str],
        arm: str,
        model_name: str,
        model_version: str,
        scores: np.ndarray,
        served_at: datetime | None = None,
    ) -> None:
        """Buffer one request's impressions; wakes the writer when ``flush_rows`` are buffered."""
        n = len(item_ids)
        order = np.argsort(-scores, kind="stable")
        rank = np.empty(n, dtype=np.int32)
        rank[order] = np.arange(1, n + 1, dtype=np.int32)
        chunk = {
            "request_id": [request_id] * n,
            "served_at": [served_at or datetime.now(UTC)] * n,
            "user_id": [user_id] * n,
            "item_id": list(item_ids),
            "arm": [arm] * n,
            "model_name": [model_name] * n,
            "model_version": [model_version] * n,
            "score": np.asarray(scores, dtype=np.float64),
            "position": np.arange(n, dtype=np.int32),
            "rank": rank,
        }
        with self._buffer_lock:
            self._pending.append(chunk)
            self._rows += n
            full = self._rows >= self.flush_rows
        if full:
            if self._thread is not None and self._thread.is_alive():
                self._wake.set()
            else:
                self.flush()

    def _take(self) -> list[dict]:
        with self._buffer_lock:
            taken, self._pending, self._rows = self._pending, [], 0
        return taken

    def _put_back(self, chunks: list[dict]) -> None:
        with self._buffer_lock:
            self._pending = chunks + self._pending
            self._rows += sum(len(c["item_id"]) for c in chunks)

    @staticmethod
    def _table(chunks: list[dict]) -> pa.Table:
        columns = {}
        for name in SCHEMA.names:
            parts = [c[name] for c in chunks]
            columns[name] = np.concatenate(parts) if isinstance(parts[0], np.ndarray) else sum(parts, [])
        return pa.Table.from_pydict(columns, schema=SCHEMA)

    def flush(self) -> int:
        """Write every buffered row now; returns how many. Rows stay buffered if the write fails."""
        with self._write_lock:
            chunks = self._take()
            if not chunks:
                return 0
            table = self._table(chunks)
            try:
                con = _connect(self.path)
                try:
                    con.register("impressions_batch", table)
                    con.execute(f"INSERT INTO {TABLE} SELECT {', '.join(SCHEMA.names)} FROM impressions_batch")
                finally:
                    con.close()
            except Exception:
                self._put_back(chunks)
                raise
            self.written += table.num_rows
            log.debug("wrote %d impressions to %s", table.num_rows, self.path)
            return table.num_rows

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception as exc:  # keep serving; the rows stay buffered for the next try
                log.error("impression write failed, %d rows kept in memory: %s", self.buffered, exc)

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="impression-writer", daemon=True)
            self._thread.start()

    def close(self) -> int:
        """Stop the writer and write what is left; rows that cannot be written go to a parquet file."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            return self.flush()
        except Exception as exc:
            chunks = self._take()
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            spill = self.path.with_name(f"{self.path.name}.unflushed-{stamp}.parquet")
            pq.write_table(self._table(chunks), spill)
            log.error(
                "could not write %s (%s): impressions saved to %s, load them into it later", self.path, exc, spill
            )
            return 0
