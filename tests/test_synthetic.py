"""The generators: planted ground truth that really produces the labels; Criteo-shaped files."""

import numpy as np
import pandas as pd

from aim.config import PlantedConfig, SyntheticCriteoConfig
from aim.data.synthetic import (
    criteo_vocab_sizes,
    ensure_criteo_like,
    ensure_planted,
    generate_planted,
    load_planted_truth,
    planted_logits,
)
from aim.pipeline.prepare import run_prepare


def test_planted_ground_truth_reproduces_the_labels(tmp_path):
    cfg = PlantedConfig(rows=5000, noise=0.0, dir=tmp_path)
    ensure_planted(tmp_path, cfg, seed=11)
    truth, weights = load_planted_truth(tmp_path)
    frame = pd.read_csv(tmp_path / "data.csv")
    assert list(frame.columns) == [f"f{i}" for i in range(6)] + ["label"]
    assert truth["pairs"] == [[0, 1], [2, 5], [3, 4]] and truth["pair_names"][1] == ["f2", "f5"]
    x = frame[[f"f{i}" for i in range(6)]].to_numpy()
    assert x.min() == 0 and x.max() == 59
    z = planted_logits(x, weights, truth)
    assert np.array_equal((z >= truth["threshold"]).astype(int), frame["label"].to_numpy())
    assert abs(frame["label"].mean() - 0.5) < 0.02
    # the planted pairs really matter: dropping one changes many labels
    weights["pairs"][0][:] = 0.0
    assert ((planted_logits(x, weights, truth) >= truth["threshold"]) != frame["label"]).mean() > 0.05


def test_planted_triple_and_noise(tmp_path):
    cfg = PlantedConfig(rows=3000, noise=0.5, triple=(1, 3, 5), dir=tmp_path)
    x, y, truth, weights = generate_planted(cfg, seed=5)
    assert truth["triple"] == [1, 3, 5] and weights["triple"].shape == (60, 60, 60)
    z = planted_logits(x, weights, truth)
    agree = ((z >= truth["threshold"]) == y).mean()
    assert 0.7 < agree < 1.0  # noise flips some labels, not most
    again = generate_planted(cfg, seed=5)
    assert np.array_equal(again[1], y)  # seeded


def test_planted_source_prepares_six_fields(tmp_path, make_params):
    params = make_params({"source": "planted", "planted": {"rows": 2000, "dir": "raw/planted"}})
    summary = run_prepare(params)
    assert list(summary["fields"]) == [f"f{i}" for i in range(6)]
    assert summary["rows"]["total"] == 2000 and summary["split_method"] == "random"
    assert (tmp_path / "raw/planted/ground_truth.json").exists()


def test_criteo_like_file_shape_and_zipf(tmp_path):
    cfg = SyntheticCriteoConfig(rows=20_000, max_vocab=5000, path=tmp_path / "c.tsv")
    ensure_criteo_like(cfg.path, cfg, seed=3, chunk_rows=7000)
    frame = pd.read_csv(cfg.path, sep="\t", header=None, dtype=str, keep_default_na=False)
    assert frame.shape == (20_000, 40)
    assert set(frame[0]) == {"0", "1"}
    assert 0.1 < frame[0].astype(int).mean() < 0.5
    big = int(np.argmax(criteo_vocab_sizes(cfg, 3)))
    column = frame[14 + big]
    values = column[column != ""]
    assert values.str.fullmatch(r"[0-9a-f]{8}").all()
    assert values.nunique() <= 5000
    counts = values.value_counts()
    assert counts.iloc[0] > 20 * counts.median()  # heavy head: Zipf frequencies
    assert (frame[1] == "").mean() > 0.01  # missing values exist
    mtime = cfg.path.stat().st_mtime_ns
    ensure_criteo_like(cfg.path, cfg, seed=3)
    assert cfg.path.stat().st_mtime_ns == mtime  # same config: not regenerated
