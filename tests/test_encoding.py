"""Vocabularies come from the training split only; rare and unseen values map to id 0."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from aim.data.arrays import PreparedData
from aim.data.encoding import log_square_sql, quantile_sql
from aim.data.schema import OOV_ID
from aim.pipeline.prepare import run_prepare


def _timed_table(tmp_path, colors: list[str]) -> None:
    n = len(colors)
    pd.DataFrame({"click": [i % 2 for i in range(n)], "color": colors, "ts": np.arange(n) * 60 + 1_700_000_000}).to_csv(
        tmp_path / "t.csv", index=False
    )


def _vocab(params) -> pd.DataFrame:
    return pd.read_parquet(params.path("data/prepared/vocab.parquet"))


def test_vocabulary_is_built_on_train_only_with_min_count(tmp_path, make_params):
    # 80 train rows (time order), then 10 valid, 10 test. "late" only after train; "rare" once in train.
    colors = ["red"] * 50 + ["blue"] * 29 + ["rare"] + ["red", "late"] * 5 + ["blue", "late"] * 5
    _timed_table(tmp_path, colors)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["color"], "timestamp": {"column": "ts"}}
    params = make_params({"source": "table", "table": table, "min_count": 2})
    summary = run_prepare(params)

    vocab = _vocab(params).set_index("token")
    assert set(vocab.index) == {"red", "blue"}  # not "late" (unseen in train), not "rare" (< min_count)
    assert vocab.loc["red", "id"] == 1 and vocab.loc["blue", "id"] == 2  # by train frequency
    assert vocab.loc["red", "count"] == 50
    assert summary["fields"]["color"]["cardinality"] == 3 and summary["fields"]["color"]["vocab_size"] == 3
    data = PreparedData(params.path("data/prepared"))
    train, valid, test = (data.split(s).fields[:, 0] for s in ("train", "valid", "test"))
    assert (train == OOV_ID).sum() == 1  # the rare value
    assert (valid == OOV_ID).sum() == 5 and (test == OOV_ID).sum() == 5  # the late value
    assert summary["fields"]["color"]["oov_rate"] == {"valid": 0.5, "test": 0.5}


def test_min_count_one_keeps_every_train_value(tmp_path, make_params):
    colors = ["red"] * 50 + ["blue"] * 29 + ["rare"] + ["red"] * 20
    _timed_table(tmp_path, colors)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["color"], "timestamp": {"column": "ts"}}
    params = make_params({"source": "table", "table": table, "min_count": 1})
    run_prepare(params)
    assert set(_vocab(params)["token"]) == {"red", "blue", "rare"}


@pytest.mark.parametrize(
    ("value", "token"),
    [(None, "__null__"), (-3, "v-3"), (0, "v0"), (2, "v2"), (2.5, "b0"), (3, "b1"), (100, "b21"), (1e6, "b190")],
)
def test_log_square_bucketing(value, token):
    got = duckdb.sql(f"SELECT {log_square_sql('x')} FROM (SELECT CAST(? AS DOUBLE) AS x)", params=[value]).fetchall()
    assert got[0][0] == token


def test_quantile_bucketing_is_monotone():
    bounds = [1.0, 5.0, 10.0]
    values = [-1, 0.99, 1.0, 4.9, 5.0, 9.99, 10.0, 1e9]
    tokens = [duckdb.sql(f"SELECT {quantile_sql(repr(float(v)), bounds)}").fetchall()[0][0] for v in values]
    assert tokens == ["q0", "q0", "q1", "q1", "q2", "q2", "q3", "q3"]


def test_numeric_fields_are_bucketed_into_categories(tmp_path, make_params):
    rng = np.random.default_rng(0)
    n = 300
    pd.DataFrame({"click": rng.integers(0, 2, n), "price": rng.exponential(50, n)}).to_csv(
        tmp_path / "t.csv", index=False
    )
    table = {"path": "t.csv", "label": {"column": "click"}, "numeric": ["price"]}
    params = make_params(
        {"source": "table", "table": table, "numeric": {"bucketing": "quantile", "quantile_buckets": 4}}
    )
    summary = run_prepare(params)
    assert summary["fields"]["price"]["kind"] == "numeric"
    assert set(_vocab(params)["token"]) == {"q0", "q1", "q2", "q3"}


def test_missing_values_and_the_literal_null_token_share_one_id(tmp_path, make_params):
    colors = ["red"] * 50 + [""] * 20 + ["__null__"] * 10 + ["red"] * 20  # train: the first 80; "" is NULL
    _timed_table(tmp_path, colors)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["color"], "timestamp": {"column": "ts"}}
    params = make_params({"source": "table", "table": table, "min_count": 1})
    summary = run_prepare(params)
    vocab = _vocab(params).set_index("token")
    assert vocab.loc["__null__", "count"] == 30 and vocab.loc["__null__", "id"] == 2  # after "red" (50)
    assert summary["fields"]["color"]["cardinality"] == 2
