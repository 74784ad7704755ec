"""Stage validate: clean prepared data passes with GX data docs; corrupted splits stop the pipeline.

One small table data set is prepared per module; every test validates its own copy of the project
folder (corrupting one split's parquet there), so tests are independent and the shared copy is
never changed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aim.cli import app
from aim.config import load_params
from aim.pipeline.prepare import run_prepare
from aim.validation.batches import reduce_multi_hot
from aim.validation.outcomes import Outcome, merge
from tests.conftest import read_json, write_params

ROWS = 2000
TABLE = {
    "path": "events.csv",
    "label": {"column": "click"},
    "categorical": ["user_id", "item_id", "city", "device"],
    "numeric": ["price"],
    "multi_hot": {"tags": "|"},
    "timestamp": {"column": "ts"},
    "entities": ["user_id", "item_id"],
}


def _events(seed: int = 11) -> pd.DataFrame:
    """Seeded click log: users all seen in train, items drawn from a range wide enough for some OOV."""
    rng = np.random.default_rng(seed)
    tags = ["|".join(f"t{k}" for k in rng.choice(6, rng.integers(1, 4), replace=False)) for _ in range(ROWS)]
    return pd.DataFrame(
        {
            "user_id": [f"u{v}" for v in rng.integers(0, 40, ROWS)],
            "item_id": [f"i{v}" for v in rng.integers(0, 400, ROWS)],
            "city": [f"c{v}" for v in rng.integers(0, 10, ROWS)],
            "device": rng.choice(["phone", "tablet", "desktop"], ROWS),
            "price": np.round(rng.exponential(20, ROWS), 2),
            "tags": tags,
            "ts": 1_700_000_000 + 60 * np.arange(ROWS),
            "click": (rng.random(ROWS) < 0.3).astype(int),
        }
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A project folder with params.yaml and the prepared table data set (never validated here)."""
    folder = tmp_path_factory.mktemp("project")
    _events().to_csv(folder / "events.csv", index=False)
    run_prepare(load_params(write_params(folder, {"source": "table", "table": TABLE})))
    return folder


@pytest.fixture
def project(prepared, tmp_path) -> Path:
    """This test's own copy of the prepared project."""
    target = tmp_path / "project"
    shutil.copytree(prepared, target)
    return target


def _validate(project: Path, *overrides: str):
    args = ["validate", "--params", str(project / "params.yaml")]
    for item in overrides:
        args += ["--set", item]
    return CliRunner().invoke(app, args)


def _split(project: Path, split: str) -> Path:
    return project / "data" / "prepared" / "parquet" / f"{split}.parquet"


def _rewrite(project: Path, split: str, change) -> pa.Table:
    """Replace one split's parquet file by ``change(table)`` (the corrupted batch)."""
    path = _split(project, split)
    table = change(pq.read_table(path))
    pq.write_table(table, path)
    return table


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _quarantined(project: Path) -> Path:
    folders = list((project / "data" / "quarantine").iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def _assert_stopped(project: Path, result, split: str, expectation: str, before: dict[str, str]) -> dict:
    """Exit 2 naming the split and expectation; quarantine holds the batch; prepared data untouched."""
    assert result.exit_code == 2, result.output
    assert f"split {split} failed" in result.output and expectation in result.output
    assert "data docs:" in result.output and "quarantine" in result.output
    assert _digest(project / "data" / "prepared") == before
    folder = _quarantined(project)
    assert folder.name.startswith(read_json(project / "data" / "prepared" / "meta.json")["data_version"] + "-")
    assert str(folder) in result.output
    copied = folder / f"{split}.parquet"
    assert copied.read_bytes() == _split(project, split).read_bytes()
    reasons = read_json(folder / "reasons.json")
    assert list(reasons["splits"]) == [split]
    assert expectation in [f["expectation"] for f in reasons["splits"][split]["failed"]]
    metrics = read_json(project / "metrics" / "validate.json")
    assert metrics["success"] is False and metrics["quarantine"] == str(folder)
    assert metrics["splits"][split]["success"] is False
    assert all(m["success"] for s, m in metrics["splits"].items() if s != split)
    assert (project / "artifacts" / "validation" / "index.html").exists()
    return reasons["splits"][split]


def _failed(report: dict, expectation: str, column: str | None) -> dict:
    (found,) = [f for f in report["failed"] if f["expectation"] == expectation and f["column"] == column]
    return found


def test_clean_data_passes_writes_docs_and_reruns(project):
    before = _digest(project / "data" / "prepared")
    first = _validate(project)
    assert first.exit_code == 0, first.output
    index = project / "artifacts" / "validation" / "index.html"
    assert index.exists() and str(index) in first.output
    metrics = read_json(project / "metrics" / "validate.json")
    meta = read_json(project / "data" / "prepared" / "meta.json")
    assert metrics["success"] is True and metrics["quarantine"] is None
    for split, report in metrics["splits"].items():
        assert report["success"] and report["rows"] == meta["splits"][split] and report["failed"] == []
        assert 0.2 < report["positive_rate"] < 0.4
        assert Path(report["docs"]).exists() and report["docs"].startswith(str(index.parent))
    assert "raw_user_id" in Path(metrics["splits"]["train"]["docs"]).read_text()

    again = _validate(project)  # re-run against the existing GX file context
    assert again.exit_code == 0, again.output
    assert len(list((index.parent / "validations").rglob("*.html"))) == 6
    assert _digest(project / "data" / "prepared") == before
    assert not (project / "data" / "quarantine").exists()


def test_label_of_two_is_stopped_and_quarantined(project):
    def corrupt(table):
        labels = table.column("label").to_numpy().copy()
        labels[[3, 17, 40]] = 2
        return _set_column(table, "label", pa.array(labels, pa.uint8()))

    _rewrite(project, "valid", corrupt)
    before = _digest(project / "data" / "prepared")
    report = _assert_stopped(project, _validate(project), "valid", "expect_column_values_to_be_in_set", before)
    failure = _failed(report, "expect_column_values_to_be_in_set", "label")
    assert failure["unexpected"] == 3 and failure["sample"] == [2, 2, 2]


def test_null_user_ids_are_stopped(project):
    def corrupt(table):
        keys = table.column("raw_user_id").to_pylist()
        for row in (0, 5, 9, 11):
            keys[row] = None
        return _set_column(table, "raw_user_id", pa.array(keys, pa.string()))

    _rewrite(project, "test", corrupt)
    before = _digest(project / "data" / "prepared")
    result = _validate(project)
    report = _assert_stopped(project, result, "test", "expect_column_values_to_not_be_null", before)
    assert _failed(report, "expect_column_values_to_not_be_null", "raw_user_id")["unexpected"] == 4
    assert "expect_column_values_to_not_be_null(raw_user_id): 4 of" in result.output


def test_missing_column_is_stopped(project):
    _rewrite(project, "train", lambda table: table.drop_columns(["city"]))
    before = _digest(project / "data" / "prepared")
    result = _validate(project)
    report = _assert_stopped(project, result, "train", "expect_table_columns_to_match_set", before)
    assert "missing ['city']" in _failed(report, "expect_table_columns_to_match_set", None)["observed"]
    assert "does not exist" in _failed(report, "expect_column_values_to_not_be_null", "city")["observed"]


def test_shifted_positive_rate_is_stopped(project):
    rng = np.random.default_rng(5)

    def corrupt(table):
        labels = table.column("label").to_numpy().copy()
        labels[rng.random(len(labels)) < 0.8] = 1
        return _set_column(table, "label", pa.array(labels, pa.uint8()))

    shifted = _rewrite(project, "valid", corrupt)
    before = _digest(project / "data" / "prepared")
    report = _assert_stopped(project, _validate(project), "valid", "expect_column_mean_to_be_between", before)
    failure = _failed(report, "expect_column_mean_to_be_between", "label")
    assert failure["observed_value"] == pytest.approx(pc.mean(shifted.column("label")).as_py())
    assert failure["kwargs"]["max_value"] < 0.5 < failure["observed_value"]


def test_oov_bound_per_field(project):
    summary = read_json(project / "data" / "prepared" / "summary.json")
    assert 0 < summary["fields"]["item_id"]["oov_rate"]["valid"] < 0.5  # passes the default bound (clean test)
    result = _validate(project, "validation.oov_rate_overrides={item_id: 0.0}")
    assert result.exit_code == 2, result.output
    assert "expect_column_values_to_not_be_in_set(item_id)" in result.output
    metrics = read_json(project / "metrics" / "validate.json")
    assert metrics["splits"]["train"]["success"]  # every train item is in the vocabulary
    failed = metrics["splits"]["valid"]["failed"]
    assert [(f["expectation"], f["column"]) for f in failed] == [("expect_column_values_to_not_be_in_set", "item_id")]


def test_chunked_validation_merges_exactly(project):
    def corrupt(table):  # bad multi-hot ids in the second chunk only
        ids = table.column("tags").to_pylist()
        ids[1200] = [1, 999]
        ids[1500] = [-4]
        return _set_column(table, "tags", pa.array(ids, pa.list_(pa.int32())))

    _rewrite(project, "train", corrupt)
    result = _validate(project, "validation.chunk_rows=1000")
    assert result.exit_code == 2, result.output
    metrics = read_json(project / "metrics" / "validate.json")
    train = metrics["splits"]["train"]
    assert train["chunks"] == 2 and metrics["splits"]["valid"]["chunks"] == 1
    # Merged over both chunks: only the bad ids fail (row count, positive rate, OOV shares hold).
    (failure,) = train["failed"]
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_be_between", "tags")
    assert failure["unexpected"] == 2 and sorted(failure["sample"]) == [-4, 999]
    assert "train-chunk-2" in train["docs"]  # the page of the chunk that failed


def test_planted_data_without_entities_passes(tmp_path):
    write_params(tmp_path, {"source": "planted", "planted": {"rows": 3000, "values": 10}})
    assert CliRunner().invoke(app, ["prepare", "-p", str(tmp_path / "params.yaml")]).exit_code == 0
    result = _validate(tmp_path)
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "metrics" / "validate.json")
    assert metrics["success"] and sum(s["rows"] for s in metrics["splits"].values()) == 3000


def test_missing_prepared_data_says_to_prepare(tmp_path):
    write_params(tmp_path, {"source": "planted"})
    result = _validate(tmp_path)
    assert result.exit_code == 2 and "aim prepare" in result.output


def test_reduce_multi_hot_keeps_every_bad_id_visible():
    column = pa.array([[1, 2], [], None, [3, -1, 9], [7], [0, None]], pa.list_(pa.int32()))
    assert reduce_multi_hot(column).to_pylist() == [2, None, None, -1, 7, -1]
    strings = pa.array(["a"])
    assert reduce_multi_hot(strings) is strings


def test_merge_adds_counts_and_weights_means():
    def chunk(unexpected: int, mean: float, rows: int) -> list[Outcome]:
        kwargs = {"column": "f", "value_set": [0], "mostly": 0.9}
        return [
            Outcome(
                "expect_column_values_to_not_be_in_set",
                "f",
                unexpected <= 0.1 * rows,
                kwargs,
                None,
                rows,
                0,
                unexpected,
            ),
            Outcome(
                "expect_column_mean_to_be_between", "label", True, {"min_value": 0.2, "max_value": 0.4}, mean, rows=rows
            ),
            Outcome("expect_table_row_count_to_be_between", None, True, {"min_value": 1}, rows, rows=rows),
        ]

    oov, mean, count = merge(merge(None, chunk(5, 0.45, 100)), chunk(20, 0.25, 300))
    assert (oov.unexpected, oov.elements, oov.success) == (25, 400, True)
    assert mean.observed == pytest.approx(0.3) and mean.success
    assert count.observed == 400 and count.success
    oov, _, _ = merge(merge(None, chunk(5, 0.3, 100)), chunk(40, 0.3, 300))
    assert not oov.success  # 45 / 400 > 10%
