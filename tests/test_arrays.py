"""Multi-hot fields: padded id lists with a mean-pooling mask; batches stream every row once."""

import numpy as np
import pandas as pd

from aim.data.arrays import PreparedData, pad_lists
from aim.pipeline.prepare import run_prepare


def test_pad_lists_truncates_and_masks():
    offsets = np.array([0, 2, 2, 7])
    values = np.array([5, 6, 1, 2, 3, 4, 9], dtype=np.int32)
    ids, mask, truncated = pad_lists(offsets, values, width=3)
    assert ids.tolist() == [[5, 6, 0], [0, 0, 0], [1, 2, 3]]
    assert mask.tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    assert truncated == 1


def test_multi_hot_ids_and_pooling_mask(tmp_path, make_params):
    rng = np.random.default_rng(3)
    n = 400
    lengths = rng.integers(0, 7, n)
    tags = ["|".join(f"g{k}" for k in rng.choice(9, size, replace=False)) for size in lengths]
    frame = pd.DataFrame({"click": rng.integers(0, 2, n), "tags": tags, "rid": [f"r{i}" for i in range(n)]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = {
        "path": "t.csv",
        "label": {"column": "click"},
        "categorical": ["rid"],
        "multi_hot": {"tags": "|"},
        "entities": ["rid"],
    }
    params = make_params({"source": "table", "table": table, "multi_hot_max_len": 4})
    summary = run_prepare(params)

    data = PreparedData(params.path("data/prepared"))
    for split in ("train", "valid", "test"):
        arrays = data.split(split)
        ids, mask = arrays.multi_hot["tags"]
        assert ids.shape == (len(arrays), 4) and mask.shape == ids.shape
        assert (ids[mask == 0] == 0).all()  # padding holds id 0 and weight 0
        assert (np.diff(mask.astype(int), axis=1) <= 0).all()  # real values first, then padding
        assert (mask.sum(axis=1) >= 1).all()  # an empty list is one "__null__" value, not nothing
        weights = mask / mask.sum(axis=1, keepdims=True)  # mean pooling weights
        assert np.allclose(weights.sum(axis=1), 1.0)
    # decode the training rows and compare with the source lists (in order, cut at 4)
    vocab = pd.read_parquet(params.path("data/prepared/vocab.parquet"))
    tags_vocab = vocab[vocab.field == "tags"]
    token_of = dict(zip(tags_vocab["id"], tags_vocab["token"], strict=True))
    source = dict(zip(frame["rid"], frame["tags"].fillna(""), strict=True))
    train = pd.read_parquet(params.path("data/prepared/parquet/train.parquet"))
    assert len(train) == summary["rows"]["train"]
    for rid, row in zip(train["raw_rid"], train["tags"], strict=True):
        expected = source[rid].split("|")[:4] if source[rid] else ["__null__"]
        assert [token_of[i] for i in row] == expected
    assert summary["fields"]["tags"]["truncated_rows"] == int((lengths > 4).sum())
    assert summary["fields"]["tags"]["max_len"] == 4


def test_batches_cover_every_row_once(tmp_path, make_params):
    frame = pd.DataFrame({"click": np.arange(1000) % 2, "user": [f"u{i}" for i in range(1000)]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = {"path": "t.csv", "label": {"column": "click"}, "categorical": ["user"]}
    params = make_params({"source": "table", "table": table})
    run_prepare(params)
    train = PreparedData(params.path("data/prepared")).split("train")
    seen = np.concatenate([b["fields"][:, 0] for b in train.batches(128, shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == sorted(np.asarray(train.fields[:, 0]).tolist())
    first = next(train.batches(128, shuffle=True, seed=1))["fields"]
    again = next(train.batches(128, shuffle=True, seed=1))["fields"]
    assert np.array_equal(first, again)  # seeded
    assert sum(len(b["labels"]) for b in train.batches(300)) == len(train)
