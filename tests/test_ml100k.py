"""The real data set: MovieLens-100k read from the installed recbole wheel."""

import numpy as np
import pyarrow.parquet as pq

from aim.data.arrays import PreparedData
from aim.pipeline.prepare import run_prepare


def test_ml100k_prepares_100k_rows_with_the_known_click_rate(make_params):
    params = make_params({"source": "ml100k", "min_count": 2})
    summary = run_prepare(params)
    assert summary["rows"]["total"] == 100_000
    assert abs(summary["positive_rate"]["all"] - 0.554) <= 0.005
    assert summary["quarantined_rows"] == 0
    assert list(summary["fields"]) == [
        "user_id",
        "item_id",
        "age",
        "gender",
        "occupation",
        "zip_code",
        "release_year",
        "genres",
    ]
    assert summary["fields"]["gender"]["vocab_size"] == 3
    data = PreparedData(params.path("data/prepared"))
    assert data.meta["entities"] == ["user_id", "item_id"]
    train, test = data.split("train"), data.split("test")
    assert train.timestamps.max() <= test.timestamps.min()
    ids, mask = train.multi_hot["genres"]
    assert mask.sum(axis=1).max() >= 3 and (mask.sum(axis=1) >= 1).all()
    assert np.asarray(train.fields).max(axis=0).tolist() == [f["vocab_size"] - 1 for f in data.fields[:7]]
    # the parquet copy holds the same rows in the same order, across its many row groups
    table = pq.read_table(params.path("data/prepared/parquet/train.parquet"), columns=["split_pos", "label", "user_id"])
    assert pq.ParquetFile(params.path("data/prepared/parquet/train.parquet")).num_row_groups > 1
    assert np.array_equal(table.column("split_pos").to_numpy(), np.arange(len(train.labels)))
    assert np.array_equal(table.column("label").to_numpy(), np.asarray(train.labels))
    assert np.array_equal(table.column("user_id").to_numpy(), np.asarray(train.fields)[:, 0])
