"""Data sources behind one interface: each stages its rows as table ``raw`` in file order.

A source returns a :class:`StagedSource` that says, in SQL over ``raw``, how to read each
model field, the 0/1 label and the event time. The rest of ``prepare`` is source-agnostic.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path

import duckdb

from aim.config import FileSourceConfig, Params, TableSourceConfig
from aim.data import synthetic
from aim.data.arrow_csv import read_coded
from aim.data.reading import (
    LABEL_TYPE,
    check_input_file,
    ensure_label_type,
    read_delimited,
    read_header,
    read_parquet_table,
    require_columns,
    with_row_hash,
)
from aim.data.rowhash import row_hashes
from aim.data.schema import FieldSpec, PostCheck, StagedSource
from aim.errors import DataError

CRITEO_INT = [f"I{i}" for i in range(1, 14)]
CRITEO_CAT = [f"C{i}" for i in range(1, 27)]
AVAZU_SKIP = {"id", "click", "hour"}


def worker_threads(params: Params) -> int:
    """Worker threads (and DuckDB threads): ``data.threads``, 0 meaning every core."""
    return max(1, params.data.threads or os.cpu_count() or 1)


def q(name: str) -> str:
    """Quote a column name for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _timestamp_sql(column: str, fmt: str | None, column_type: str) -> str:
    col = q(column)
    if fmt:
        return f"CAST(epoch(try_strptime(CAST({col} AS VARCHAR), '{fmt}')) AS BIGINT)"
    if column_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST(epoch({col}) AS BIGINT)"
    return f"COALESCE(TRY_CAST({col} AS BIGINT), CAST(epoch(TRY_CAST(CAST({col} AS VARCHAR) AS TIMESTAMP)) AS BIGINT))"


def _timestamp_check(ts_sql: str) -> PostCheck:
    return PostCheck(f"({ts_sql}) IS NULL", "timestamp missing or unparseable")


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def stage_criteo(con: duckdb.DuckDBPyConnection, cfg: FileSourceConfig, params: Params) -> StagedSource:
    """Criteo TSV: label, 13 integer and 26 categorical columns, no header.

    Arrow parses it into coded columns (:mod:`aim.data.arrow_csv`), or DuckDB into ``raw``
    where Arrow cannot reproduce DuckDB's reading of the file; both give the same outputs.
    """
    path = params.path(cfg.path)
    columns = {"label": LABEL_TYPE} | {c: "BIGINT" for c in CRITEO_INT} | {c: "VARCHAR" for c in CRITEO_CAT}
    fields = [FieldSpec(c, "numeric", q(c)) for c in CRITEO_INT]
    fields += [FieldSpec(c, "categorical", q(c)) for c in CRITEO_CAT]
    label_sql = "CAST(label = '1' AS UTINYINT)"
    check_input_file(path, "Criteo")
    ensure_label_type(con)
    coded = read_coded(
        con, path, columns, delimiter="\t", not_null=["label"], label_columns={"label"}, threads=worker_threads(params)
    )
    if coded is not None:
        row_hash = row_hashes(con, [(coded[name], typ) for name, typ in columns.items()], worker_threads(params))
        rows = len(row_hash)
        return StagedSource("criteo", fields, label_sql, None, [], [path], rows, coded=coded, row_hash=row_hash)
    rows, _ = read_delimited(
        con,
        "raw",
        path,
        columns,
        delimiter="\t",
        header=False,
        not_null=["label"],
        label_columns={"label"},
        what="Criteo",
    )
    return StagedSource("criteo", fields, label_sql, None, [], [path], rows)


def stage_avazu(con: duckdb.DuckDBPyConnection, cfg: FileSourceConfig, params: Params) -> StagedSource:
    """Avazu CSV with header: ``click`` label, ``hour`` as YYMMDDHH, categorical columns."""
    path = params.path(cfg.path)
    check_input_file(path, "Avazu")
    header = read_header(path, ",")
    require_columns(path, header, ["click", "hour"])
    types = {"click": LABEL_TYPE, "hour": "BIGINT"}
    columns = {h: types.get(h, "VARCHAR") for h in header}
    rows, _ = read_delimited(
        con,
        "raw",
        path,
        columns,
        delimiter=",",
        header=True,
        not_null=["click", "hour"],
        label_columns={"click"},
        what="Avazu",
    )
    hour_text = "lpad(CAST(hour AS VARCHAR), 8, '0')"
    ts_sql = f"CAST(epoch(try_strptime({hour_text}, '%y%m%d%H')) AS BIGINT)"
    fields = [FieldSpec(h, "categorical", q(h)) for h in header if h not in AVAZU_SKIP]
    fields += [
        FieldSpec("hour_of_day", "categorical", f"substr({hour_text}, 7, 2)"),
        FieldSpec("weekday", "categorical", f"CAST(dayofweek(try_strptime({hour_text}, '%y%m%d%H')) AS VARCHAR)"),
    ]
    entities = [e for e in ("device_id", "app_id", "site_id") if e in header]
    return StagedSource(
        "avazu",
        fields,
        "CAST(click = '1' AS UTINYINT)",
        ts_sql,
        entities,
        [path],
        rows,
        checks=[_timestamp_check(ts_sql)],
    )


def stage_table(con: duckdb.DuckDBPyConnection, cfg: TableSourceConfig | None, params: Params) -> StagedSource:
    """Any CSV or parquet file described by the ``data.table`` schema in params.yaml."""
    if cfg is None:
        raise DataError("data.source is 'table' but params.yaml has no data.table section describing the file")
    path = params.path(cfg.path)
    label = cfg.label
    used = [label.column, *cfg.categorical, *cfg.numeric, *cfg.multi_hot, *cfg.entities]
    if cfg.timestamp:
        used.append(cfg.timestamp.column)
    used = list(dict.fromkeys(used))
    fmt = cfg.format
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"
    checks: list[PostCheck] = []
    col = q(label.column)
    if fmt == "csv":
        check_input_file(path, "table")
        if cfg.header:
            header = read_header(path, cfg.delimiter)
        else:
            first = read_header(path, cfg.delimiter)
            header = [f"column{i}" for i in range(len(first))]
        require_columns(path, header, used)
        types = {c: "DOUBLE" for c in cfg.numeric}
        types[label.column] = LABEL_TYPE if label.rule == "binary" else "DOUBLE"
        columns = {h: types.get(h, "VARCHAR") for h in header}
        not_null = [label.column] + ([cfg.timestamp.column] if cfg.timestamp else [])
        rows, _ = read_delimited(
            con,
            "raw",
            path,
            columns,
            delimiter=cfg.delimiter,
            header=cfg.header,
            not_null=not_null,
            label_columns={label.column},
            what="table",
        )
        label_value = f"CAST({col} AS VARCHAR)" if label.rule == "binary" else col
        numeric_expr = q
    else:
        rows = read_parquet_table(con, "raw", path, used)
        label_value = f"TRY_CAST({col} AS DOUBLE)"
        checks.append(
            PostCheck(
                f"{label_value} IS NULL" + (f" OR {label_value} NOT IN (0, 1)" if label.rule == "binary" else ""),
                f"label column {label.column} must be " + ("0 or 1" if label.rule == "binary" else "numeric"),
            )
        )

        def numeric_expr(c: str) -> str:
            return f"TRY_CAST({q(c)} AS DOUBLE)"

    if label.rule == "binary":
        label_sql = f"CAST(CAST({label_value} AS DOUBLE) = 1 AS UTINYINT)"
    else:
        label_sql = f"CAST({label_value} {label.rule} {label.value} AS UTINYINT)"
    ts_sql = None
    if cfg.timestamp:
        column_type = _column_types(con, "raw")[cfg.timestamp.column]
        ts_sql = _timestamp_sql(cfg.timestamp.column, cfg.timestamp.format, column_type)
        checks.append(_timestamp_check(ts_sql))
    fields = [FieldSpec(c, "categorical", q(c)) for c in cfg.categorical]
    fields += [FieldSpec(c, "numeric", numeric_expr(c)) for c in cfg.numeric]
    fields += [FieldSpec(c, "multi_hot", q(c), sep) for c, sep in cfg.multi_hot.items()]
    return StagedSource("table", fields, label_sql, ts_sql, list(cfg.entities), [path], rows, checks=checks)


def ml100k_dir(params: Params) -> Path:
    """Folder with MovieLens-100k: params' override, else the copy inside the recbole wheel."""
    if params.data.ml100k.path is not None:
        return params.path(params.data.ml100k.path)
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError(
            "MovieLens-100k is read from the recbole==1.2.1 wheel, which is not installed: "
            "run `make run`, or `pip install --no-deps recbole==1.2.1`"
        ) from exc
    return Path(str(dist.locate_file("recbole/dataset_example/ml-100k")))


def stage_ml100k(con: duckdb.DuckDBPyConnection, params: Params) -> StagedSource:
    """MovieLens-100k: ratings joined with users and items; clicked = rating >= threshold."""
    folder = ml100k_dir(params)
    files = {part: folder / f"ml-100k.{part}" for part in ("inter", "user", "item")}
    layouts = {
        "inter": {"user_id": "VARCHAR", "item_id": "VARCHAR", "rating": "DOUBLE", "timestamp": "DOUBLE"},
        "user": {
            "user_id": "VARCHAR",
            "age": "VARCHAR",
            "gender": "VARCHAR",
            "occupation": "VARCHAR",
            "zip_code": "VARCHAR",
        },
        "item": {"item_id": "VARCHAR", "movie_title": "VARCHAR", "release_year": "VARCHAR", "class": "VARCHAR"},
    }
    keys = {"inter": ["user_id", "item_id", "rating", "timestamp"], "user": ["user_id"], "item": ["item_id"]}
    for part, path in files.items():
        check_input_file(path, f"MovieLens-100k {part}")
        header = read_header(path, "\t")
        require_columns(path, header, list(layouts[part]))
        if header != list(layouts[part]):
            raise DataError(f"{path}: expected columns {list(layouts[part])}, found {header}")
        read_delimited(
            con,
            f"ml_{part}",
            path,
            layouts[part],
            delimiter="\t",
            header=True,
            not_null=keys[part],
            what=f"MovieLens-100k {part}",
        )
    joined = """SELECT i.user_id, i.item_id, i.rating, CAST(i.timestamp AS BIGINT) AS timestamp,
                  u.age, u.gender, u.occupation, u.zip_code, it.movie_title, it.release_year,
                  it.class AS genres
           FROM ml_inter i
           LEFT JOIN ml_user u USING (user_id)
           LEFT JOIN (SELECT item_id, movie_title, release_year, class FROM ml_item
                      QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY _row_hash) = 1) it USING (item_id)"""
    con.execute("CREATE OR REPLACE TABLE raw AS " + with_row_hash(joined))
    con.execute("DROP TABLE ml_inter; DROP TABLE ml_user; DROP TABLE ml_item")
    rows = int(con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
    fields = [
        FieldSpec(name, "categorical", q(name))
        for name in ("user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year")
    ]
    fields.append(FieldSpec("genres", "multi_hot", "genres", " "))
    threshold = params.data.ml100k.click_threshold
    return StagedSource(
        "ml100k",
        fields,
        f"CAST(rating >= {threshold} AS UTINYINT)",
        "timestamp",
        ["user_id", "item_id"],
        list(files.values()),
        rows,
    )


def stage_planted(con: duckdb.DuckDBPyConnection, params: Params) -> StagedSource:
    """The AutoFIS planted-interaction set, generated (once per config) then read as a table."""
    cfg = params.data.planted
    folder = params.path(cfg.dir)
    synthetic.ensure_planted(folder, cfg, params.seed)
    table = TableSourceConfig(
        path=folder / synthetic.PLANTED_DATA,
        label={"column": "label"},
        categorical=[f"f{i}" for i in range(cfg.fields)],
    )
    staged = stage_table(con, table, params)
    staged.name = "planted"
    return staged


def stage_synthetic_criteo(con: duckdb.DuckDBPyConnection, params: Params) -> StagedSource:
    """A Criteo-shaped generated file (cached by config), read with the Criteo reader."""
    cfg = params.data.synthetic_criteo
    path = params.path(cfg.path)
    synthetic.ensure_criteo_like(path, cfg, params.seed)
    staged = stage_criteo(con, FileSourceConfig(path=path), params)
    staged.name = "synthetic_criteo"
    return staged


STAGERS: dict[str, Callable[[duckdb.DuckDBPyConnection, Params], StagedSource]] = {
    "ml100k": stage_ml100k,
    "criteo": lambda con, p: stage_criteo(con, p.data.criteo, p),
    "avazu": lambda con, p: stage_avazu(con, p.data.avazu, p),
    "table": lambda con, p: stage_table(con, p.data.table, p),
    "planted": stage_planted,
    "synthetic_criteo": stage_synthetic_criteo,
}


def stage_source(con: duckdb.DuckDBPyConnection, params: Params) -> StagedSource:
    """Stage the source named in ``params.data.source`` as table ``raw``."""
    return STAGERS[params.data.source](con, params)
