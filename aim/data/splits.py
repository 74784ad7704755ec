"""Train / valid / test assignment: by event time when there is one, else a seeded shuffle.

The assignment is two numpy arrays indexed by the staged ``raw`` table's rowid: ``split``
(0 train, 1 valid, 2 test, 255 quarantined) and ``pos`` (the row's place inside its split);
``rows``, the rowids in output order (train, valid, test, each by ``pos``), which encoding uses
to gather every column into place; and the same cut as a row-local SQL rule that DuckDB
evaluates as a plain filter (for statistics on training rows): no sort and no join on the big table.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from aim.config import SplitConfig
from aim.data.reading import ROW_HASH
from aim.data.schema import StagedSource
from aim.errors import ConfigError

SPLITS = ("train", "valid", "test")
QUARANTINED = 255


@dataclass
class SplitAssignment:
    """Which split each staged row belongs to (by rowid), where inside it, and the same rule in SQL."""

    split: np.ndarray  # uint8 [rows]
    pos: np.ndarray  # int64 [rows]
    counts: dict[str, int]
    method: str
    split_sql: str  # row-local SQL giving the split code of a row of ``raw``
    rows: np.ndarray  # int64 [usable rows]: rowids of train, valid then test, each in ``pos`` order

    def bounds(self, name: str) -> tuple[int, int]:
        """Where split ``name`` lies in ``rows`` (start, stop)."""
        start = 0
        for split in SPLITS:
            if split == name:
                return start, start + self.counts[split]
            start += self.counts[split]
        raise KeyError(name)


def split_sizes(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """Row counts of train, valid and test for ``n`` usable rows (test takes the remainder)."""
    n_train = int(round(n * cfg.train))
    n_valid = int(round(n * cfg.valid))
    return n_train, n_valid, n - n_train - n_valid


def split_method(cfg: SplitConfig, staged: StagedSource) -> str:
    """Resolve ``auto`` to ``time`` when the source has a timestamp, else ``random``."""
    if cfg.method == "time" and staged.timestamp_sql is None:
        raise ConfigError(
            f"data.split.method is 'time' but source '{staged.name}' has no timestamp: "
            "use 'random' or name a timestamp column"
        )
    if cfg.method == "auto":
        return "time" if staged.timestamp_sql else "random"
    return cfg.method


def assign_splits(
    con: duckdb.DuckDBPyConnection, staged: StagedSource, cfg: SplitConfig, seed: int, bad_rows: np.ndarray
) -> SplitAssignment:
    """Order the usable rows by a content key and cut them into train, valid and test.

    The key is (event time, seeded row hash) for a time split and (seeded row hash) for a random
    one: it depends only on a row's contents, never on load order, so every run on the same input
    gives the same splits. Identical rows are told apart by rowid: they are interchangeable, so
    the output is the same whichever copy comes first. DuckDB sorts the keys (in parallel); the
    cut is also expressed as a row-local SQL rule (``split_sql``), so DuckDB can filter training
    rows without a join.
    """
    n = staged.rows_loaded
    method = split_method(cfg, staged)
    ts_sql = f"CAST({staged.timestamp_sql} AS BIGINT)" if method == "time" else "CAST(0 AS BIGINT)"
    hash_sql = f"hash({ROW_HASH}, {int(seed)})"
    got = con.sql(
        f"SELECT rowid, COALESCE({ts_sql}, 0) AS ts, {hash_sql} AS h FROM raw ORDER BY ts, h, rowid"
    ).fetchnumpy()
    order = np.asarray(got["rowid"], dtype=np.int64)
    usable = ~bad_rows[order]
    order = order[usable]
    ts, h = np.asarray(got["ts"], dtype=np.int64)[usable], np.asarray(got["h"], dtype=np.uint64)[usable]
    n_train, n_valid, n_test = split_sizes(len(order), cfg)
    if min(n_train, n_valid, n_test) == 0:
        raise ConfigError(
            f"{len(order)} usable rows cannot fill train/valid/test shares "
            f"{cfg.train}/{cfg.valid}/{cfg.test}: bring more data"
        )
    # Keys are unique (rowid is part of them), so the first n_train ordered rows are exactly the
    # rows whose key is below the first cut.
    cuts = [(int(ts[k]), int(h[k]), int(order[k])) for k in (n_train, n_train + n_valid)]
    split = np.full(n, QUARANTINED, dtype=np.uint8)
    pos = np.zeros(n, dtype=np.int64)
    counts = {}
    start = 0
    for code, (name, size) in enumerate(zip(SPLITS, (n_train, n_valid, n_test), strict=True)):
        members = order[start : start + size]
        split[members] = code
        pos[members] = np.arange(size)
        counts[name] = size
        start += size
    bad_sql = " OR ".join(f"({c.bad_sql})" for c in staged.checks) or "false"
    below = [
        f"({ts_sql} < {t} OR ({ts_sql} = {t} AND ({hash_sql} < CAST({k} AS UBIGINT) "
        f"OR ({hash_sql} = CAST({k} AS UBIGINT) AND rowid < {r}))))"
        for t, k, r in cuts
    ]
    split_sql = f"(CASE WHEN {bad_sql} THEN {QUARANTINED} WHEN {below[0]} THEN 0 WHEN {below[1]} THEN 1 ELSE 2 END)"
    return SplitAssignment(split, pos, counts, method, split_sql, order)
