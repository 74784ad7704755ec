"""The Arrow staging of Criteo: same outputs as DuckDB's, bad lines quarantined by their true line."""

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aim.data import arrow_csv
from aim.data.arrays import PreparedData
from aim.data.encoding import dictionary_codes
from aim.data.reading import ensure_label_type
from aim.data.rowhash import row_hashes
from aim.data.schema import CodedColumn
from aim.pipeline.prepare import run_prepare
from tests.conftest import criteo_line


def _lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        ints = [int(v) if rng.random() > 0.1 else None for v in rng.integers(-2, 500, 13)]
        cats = [f"{int(v):08x}" if rng.random() > 0.05 else "" for v in rng.integers(0, 40, 26)]
        lines.append(criteo_line(int(rng.random() < 0.3), ints, cats))
    return lines


def _prepare(tmp_path, make_params, lines: list[str], name: str):
    (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    params = make_params(
        {
            "source": "criteo",
            "criteo": {"path": f"{name}.tsv"},
            "max_quarantine_share": 0.5,
            "output_dir": f"data/{name}",
            "warehouse": f"data/{name}.duckdb",
        }
    )
    summary = run_prepare(params)
    return summary, params.path(f"data/{name}")


def _same_outputs(a, b) -> None:
    for split in ("train", "valid", "test"):
        x, y = PreparedData(a).split(split), PreparedData(b).split(split)
        assert np.array_equal(x.fields, y.fields) and np.array_equal(x.labels, y.labels)
    assert pd.read_parquet(a / "vocab.parquet").equals(pd.read_parquet(b / "vocab.parquet"))
    assert (a / "parquet" / "train.parquet").read_bytes() == (b / "parquet" / "train.parquet").read_bytes()


def test_arrow_and_duckdb_staging_give_identical_outputs(tmp_path, make_params, monkeypatch):
    lines = _lines(600)
    lines += lines[:30]  # identical rows: the split tells them apart by row number
    monkeypatch.setattr(arrow_csv, "CHUNK_BYTES", 4096)  # many chunks
    fast, fast_dir = _prepare(tmp_path, make_params, lines, "fast")
    monkeypatch.setattr(arrow_csv, "read_coded", lambda *a, **k: None)
    monkeypatch.setattr("aim.data.sources.read_coded", lambda *a, **k: None)
    slow, slow_dir = _prepare(tmp_path, make_params, lines, "slow")
    assert fast["rows"] == slow["rows"] and fast["fields"] == slow["fields"]
    _same_outputs(fast_dir, slow_dir)


def test_bad_lines_in_chunks_are_quarantined_with_their_line_numbers(tmp_path, make_params, monkeypatch):
    lines = _lines(600, seed=1)
    good = lines[0].split("\t")
    bad = {3: "\t".join(good[:-2]), 250: "\t".join(["2", *good[1:]]), 251: "", 598: "\t".join([*good, "x"])}
    for line_no, text in bad.items():
        lines[line_no - 1] = text
    monkeypatch.setattr(arrow_csv, "CHUNK_BYTES", 8192)
    summary, folder = _prepare(tmp_path, make_params, lines, "bad")
    q = pd.read_csv(folder / "quarantine.csv")
    # DuckDB's reader skips an empty line (as it always has) and may number a cast reject that
    # comes before one a line late (its quirk, in the whole-file read too); column-count rejects
    # keep their exact line across chunks.
    assert summary["quarantined_rows"] == 3 and summary["rows"]["total"] == 600 - len(bad)
    assert {3, 598} <= set(q["line"])
    label = q[q["reason"].str.contains("label")]
    assert len(label) == 1 and label["content"].iloc[0].startswith("2\t") and label["line"].iloc[0] in (250, 251)


def test_a_quote_sends_the_whole_file_to_duckdb(tmp_path):
    lines = _lines(50)
    lines[10] = lines[10].replace("\t", '\t"', 1)
    path = tmp_path / "q.tsv"
    path.write_text("\n".join(lines) + "\n")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE quarantine (source_file VARCHAR, line BIGINT, row_index BIGINT, reason VARCHAR, content VARCHAR)"
    )
    ensure_label_type(con)
    columns = (
        {"label": "aim_label"} | {f"I{i}": "BIGINT" for i in range(1, 14)} | {f"C{i}": "VARCHAR" for i in range(1, 27)}
    )
    assert arrow_csv.read_coded(con, path, columns, delimiter="\t", not_null=["label"]) is None
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0


@pytest.mark.parametrize(("chunked", "threads"), [(False, 1), (True, 1), (True, 2)])
def test_row_hash_is_duckdbs(chunked, threads, monkeypatch):
    monkeypatch.setattr("aim.data.rowhash._BLOCK_ROWS", 2)  # several blocks, folded side by side
    table = pa.table(
        {
            "label": ["0", "1", "1", "0", "1"],
            "n": pa.array([1, None, 3, 3, -7], pa.int64()),
            "c": ["x", None, "", "x", "ü"],
        }
    )
    con = duckdb.connect()
    ensure_label_type(con)
    columns = []
    for name, typ in (("label", "aim_label"), ("n", "BIGINT"), ("c", "VARCHAR")):
        column = table.column(name)
        if chunked:
            column = pa.chunked_array([column.chunk(0).slice(0, 2), column.chunk(0).slice(2)])
        columns.append((CodedColumn(*dictionary_codes(column)), typ))
    con.register("t_arrow", table)
    expected = con.sql(
        "SELECT hash(t) AS h FROM (SELECT CAST(label AS aim_label) AS label, n, c FROM t_arrow) t"
    ).fetchnumpy()["h"]
    assert np.array_equal(row_hashes(con, columns, threads), np.asarray(expected, dtype=np.uint64))


@pytest.mark.parametrize("final_newline", [True, False])
def test_chunks_cover_the_file_with_their_first_line_numbers(tmp_path, final_newline):
    rng = np.random.default_rng(3)
    lines = ["x" * int(n) for n in rng.integers(0, 40, 300)] + ["y" * 200]  # one line longer than the buffer
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path = tmp_path / "f.tsv"
    path.write_text(text)
    pieces, first_lines = [], []
    for chunk in arrow_csv.chunks(path, 64):
        assert chunk.has(b"y") == (b"y" in bytes(chunk.text))
        pieces.append(bytes(chunk.text))  # a copy: the reader reuses its buffer for the next piece
        first_lines.append(chunk.first_line)
        assert chunk.lines() == bytes(chunk.text).count(b"\n") + (not bytes(chunk.text).endswith(b"\n"))
    assert b"".join(pieces) == text.encode()
    assert all(piece.endswith(b"\n") for piece in pieces[:-1]) and len(pieces) > 10
    assert first_lines == [1 + b"".join(pieces[:k]).count(b"\n") for k in range(len(pieces))]


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_parquet_uses_the_configured_compression(tmp_path, make_params, codec):
    (tmp_path / "c.tsv").write_text("\n".join(_lines(200)) + "\n")
    params = make_params({"source": "criteo", "criteo": {"path": "c.tsv"}, "parquet_compression": codec})
    run_prepare(params)
    meta = pq.ParquetFile(params.path(params.data.output_dir) / "parquet" / "train.parquet").metadata
    codecs = {meta.row_group(0).column(j).compression for j in range(meta.num_columns)}
    assert codecs == {codec.upper()}
