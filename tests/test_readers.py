"""Each reader on small files the tests write: good rows kept, bad lines quarantined by line."""

import csv

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aim.cli import app
from aim.data.arrays import PreparedData
from aim.errors import DataError
from aim.pipeline.prepare import run_prepare
from tests.conftest import criteo_line


def _good_criteo_lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        ints = [int(v) if rng.random() > 0.1 else None for v in rng.integers(-2, 500, 13)]
        cats = [f"{int(v):08x}" for v in rng.integers(0, 20, 26)]
        lines.append(criteo_line(int(rng.random() < 0.3), ints, cats))
    return lines


def _quarantine(params) -> pd.DataFrame:
    return pd.read_csv(params.path("data/prepared/quarantine.csv"))


def test_criteo_malformed_lines_are_quarantined_with_line_numbers(tmp_path, make_params):
    lines = _good_criteo_lines(60)
    good = lines[0].split("\t")
    bad = {
        5: "\t".join(good[:-3]),  # too few columns
        9: "\t".join(good[:3] + ["abc"] + good[4:]),  # text in integer field I3
        12: "\t".join(["2"] + good[1:]),  # label not 0/1
        15: "\t".join([""] + good[1:]),  # empty label
        20: "\t".join(good + ["extra"]),  # too many columns
    }
    for line_no, text in bad.items():
        lines[line_no - 1] = text
    (tmp_path / "criteo.tsv").write_text("\n".join(lines) + "\n")
    params = make_params({"source": "criteo", "criteo": {"path": "criteo.tsv"}, "max_quarantine_share": 0.5})
    summary = run_prepare(params)

    assert summary["rows"]["total"] == 55
    assert summary["quarantined_rows"] == 5
    q = _quarantine(params).set_index("line")
    assert sorted(q.index) == sorted(bad)
    assert "missing columns" in q.loc[5, "reason"]
    assert "I3" in q.loc[9, "reason"] and "abc" in q.loc[9, "reason"]
    assert "label" in q.loc[12, "reason"] and "0 or 1" in q.loc[12, "reason"]
    assert "label" in q.loc[15, "reason"]
    assert "too many columns" in q.loc[20, "reason"]
    assert q.loc[9, "content"].startswith(good[0])  # the raw line is kept
    assert summary["quarantine_file"].endswith("quarantine.csv")


def test_avazu_time_split_derived_fields_and_bad_hours(tmp_path, make_params):
    rng = np.random.default_rng(1)
    path = tmp_path / "avazu.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "click", "hour", "C1", "banner_pos", "site_id", "app_id", "device_id"])
        for i in range(80):
            hour = f"141021{i % 24:02d}" if i < 40 else f"141022{i % 24:02d}"
            writer.writerow([i, int(rng.random() < 0.2), hour, 1005, i % 2, f"s{i % 5}", f"a{i % 3}", f"d{i % 7}"])
        writer.writerow([80, 1, "notahour", 1005, 0, "s1", "a1", "d1"])  # line 82: not an integer
        writer.writerow([81, 3, "14102101", 1005, 0, "s1", "a1", "d1"])  # line 83: click 3
        writer.writerow([82, 0, "14139999", 1005, 0, "s1", "a1", "d1"])  # day 99: no such date
    params = make_params({"source": "avazu", "avazu": {"path": "avazu.csv"}, "max_quarantine_share": 0.5})
    summary = run_prepare(params)

    assert summary["split_method"] == "time"
    assert summary["rows"]["total"] == 80
    assert {"hour_of_day", "weekday", "site_id", "device_id"} <= set(summary["fields"])
    assert "click" not in summary["fields"] and "id" not in summary["fields"]
    q = _quarantine(params)
    assert set(q["line"].dropna().astype(int)) == {82, 83}
    unparsed = q[q["line"].isna()]
    assert len(unparsed) == 1 and "timestamp" in unparsed["reason"].iloc[0]
    assert "14139999" in unparsed["content"].iloc[0]
    data = PreparedData(params.path("data/prepared"))
    assert data.split("train").timestamps.max() <= data.split("valid").timestamps.min()
    assert data.split("valid").timestamps.max() <= data.split("test").timestamps.min()


def test_table_csv_with_label_rule_numeric_multi_hot_and_iso_time(tmp_path, make_params):
    rng = np.random.default_rng(2)
    n = 200
    frame = pd.DataFrame(
        {
            "user": [f"u{i % 17}" for i in range(n)],
            "item": [f"i{i % 11}" for i in range(n)],
            "rating": rng.integers(1, 6, n),
            "price": np.round(rng.exponential(20, n), 2),
            "tags": ["|".join(f"t{k}" for k in rng.choice(6, rng.integers(1, 4), replace=False)) for _ in range(n)],
            "ts": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    frame.to_csv(tmp_path / "events.csv", index=False)
    table = {
        "path": "events.csv",
        "label": {"column": "rating", "rule": ">=", "value": 4},
        "categorical": ["user", "item"],
        "numeric": ["price"],
        "multi_hot": {"tags": "|"},
        "timestamp": {"column": "ts"},
        "entities": ["user", "item"],
    }
    params = make_params({"source": "table", "table": table})
    summary = run_prepare(params)

    assert summary["rows"]["total"] == n
    assert summary["positive_rate"]["all"] == pytest.approx((frame["rating"] >= 4).mean())
    assert summary["split_method"] == "time"
    test = pd.read_parquet(params.path("data/prepared/parquet/test.parquet"))
    expected = frame.set_index(frame["user"] + frame["ts"])
    epoch = pd.to_datetime(expected["ts"]).astype("int64") // 10**9
    got = test.set_index(
        test["raw_user"] + pd.to_datetime(test["timestamp"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    assert (got["label"] == (expected.loc[got.index, "rating"] >= 4).astype(int)).all()
    assert (got["timestamp"] == epoch.loc[got.index]).all()
    assert summary["fields"]["tags"]["kind"] == "multi_hot"


def test_table_parquet_bad_labels_quarantined_by_row(tmp_path, make_params):
    frame = pd.DataFrame({"label": [0, 1] * 30 + [2, None], "city": [f"c{i % 4}" for i in range(62)]})
    frame.to_parquet(tmp_path / "t.parquet")
    params = make_params(
        {
            "source": "table",
            "max_quarantine_share": 0.5,
            "table": {"path": "t.parquet", "label": {"column": "label"}, "categorical": ["city"]},
        }
    )
    summary = run_prepare(params)
    assert summary["rows"]["total"] == 60
    q = _quarantine(params)
    assert sorted(q["row_index"]) == [60, 61]
    assert q["reason"].str.contains("0 or 1").all()


def test_empty_and_missing_files_stop_with_one_line_errors(tmp_path, make_params):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        run_prepare(make_params({"source": "criteo", "criteo": {"path": "empty.tsv"}}))
    with pytest.raises(DataError, match="does not exist"):
        run_prepare(make_params({"source": "criteo", "criteo": {"path": "nothere.tsv"}}))
    assert not (tmp_path / "data" / "prepared").exists()


def test_schema_naming_absent_columns_is_refused(tmp_path, make_params):
    pd.DataFrame({"click": [0, 1], "user": ["a", "b"]}).to_csv(tmp_path / "t.csv", index=False)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["user", "city", "country"]}
    with pytest.raises(DataError, match="city, country") as err:
        run_prepare(make_params({"source": "table", "table": table}))
    assert "click, user" in str(err.value)  # says what the file has


def test_all_lines_bad_and_too_many_bad_lines(tmp_path, make_params):
    (tmp_path / "bad.tsv").write_text("a,b,c\n" * 20)
    with pytest.raises(DataError, match="no usable rows"):
        run_prepare(make_params({"source": "criteo", "criteo": {"path": "bad.tsv"}}))
    lines = _good_criteo_lines(20)
    lines[:5] = ["x\ty"] * 5
    (tmp_path / "some.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="max_quarantine_share") as err:
        run_prepare(make_params({"source": "criteo", "criteo": {"path": "some.tsv"}, "max_quarantine_share": 0.1}))
    fallback = tmp_path / "data" / "quarantine-criteo-failed.csv"
    assert str(fallback) in str(err.value) and len(pd.read_csv(fallback)) == 5


def test_cli_reports_errors_in_one_line_with_exit_code_2(tmp_path, make_params):
    (tmp_path / "empty.tsv").write_text("")
    make_params({"source": "criteo", "criteo": {"path": "empty.tsv"}})
    result = CliRunner().invoke(app, ["prepare", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2
    assert "error:" in result.output and "is empty" in result.output
    assert "Traceback" not in result.output
