"""Synthetic data generators, written as files the real readers then load.

- ``planted``: the AutoFIS section 4.5.2 set. Each of m fields takes one of N values;
  y = 1[Σ_i w_i[x_i] + Σ_{(i,j)∈C} v_ij[x_i, x_j] (+ u[x_a, x_b, x_c]) + b + ε ≥ threshold].
  The ground truth (C, the weight tables, b, threshold) is written beside the data.
- ``criteo_like``: 13 integer and 26 categorical fields, Zipf value frequencies, vocabularies up
  to ``max_vocab``, any number of rows, streamed to a Criteo-format TSV in chunks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm.auto import tqdm

from aim.config import PlantedConfig, SyntheticCriteoConfig

PLANTED_DATA = "data.csv"
PLANTED_TRUTH = "ground_truth.json"
PLANTED_WEIGHTS = "ground_truth.npz"
_FINGERPRINT = "generator.json"


def planted_logits(x: np.ndarray, weights: dict[str, np.ndarray], truth: dict) -> np.ndarray:
    """The noiseless score z of equation (16) for value matrix ``x`` [rows, m]."""
    z = np.full(len(x), truth["bias"], dtype=np.float64)
    z += weights["linear"][np.arange(x.shape[1]), x].sum(axis=1)
    for k, (i, j) in enumerate(truth["pairs"]):
        z += weights["pairs"][k][x[:, i], x[:, j]]
    if truth["triple"] is not None:
        a, b, c = truth["triple"]
        z += weights["triple"][x[:, a], x[:, b], x[:, c]]
    return z


def generate_planted(cfg: PlantedConfig, seed: int) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """Sample (x, y, ground truth, weight tables) of the planted-interaction set."""
    m, n = cfg.fields, cfg.values
    for pair in cfg.pairs:
        if len(set(pair)) != 2 or not all(0 <= f < m for f in pair):
            raise ValueError(f"planted pair {pair} must name two different fields in 0..{m - 1}")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, n, size=(cfg.rows, m))
    weights = {
        "linear": rng.normal(0.0, cfg.linear_scale, size=(m, n)),
        "pairs": np.stack([rng.normal(0.0, cfg.pair_scale, size=(n, n)) for _ in cfg.pairs])
        if cfg.pairs
        else np.zeros((0, n, n)),
    }
    if cfg.triple is not None:
        weights["triple"] = rng.normal(0.0, cfg.triple_scale, size=(n, n, n))
    truth = {
        "fields": [f"f{i}" for i in range(m)],
        "values_per_field": n,
        "pairs": [list(p) for p in cfg.pairs],
        "pair_names": [[f"f{i}", f"f{j}"] for i, j in cfg.pairs],
        "triple": list(cfg.triple) if cfg.triple is not None else None,
        "bias": float(rng.normal()),
        "noise_std": cfg.noise,
    }
    z = planted_logits(x, weights, truth)
    noisy = z + rng.normal(0.0, cfg.noise, size=len(z)) if cfg.noise > 0 else z
    truth["threshold"] = float(np.quantile(noisy, 1.0 - cfg.positive_rate))
    y = (noisy >= truth["threshold"]).astype(np.int8)
    truth["positive_rate"] = float(y.mean())
    return x, y, truth, weights


def _fingerprint(cfg_dump: dict, seed: int) -> str:
    return json.dumps({"config": cfg_dump, "seed": seed}, sort_keys=True, default=str)


def _is_current(marker: Path, fingerprint: str) -> bool:
    return marker.exists() and marker.read_text() == fingerprint


def ensure_planted(folder: Path, cfg: PlantedConfig, seed: int) -> Path:
    """Write the planted set to ``folder`` unless an identical one is already there."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / _FINGERPRINT
    fingerprint = _fingerprint(cfg.model_dump(mode="json", exclude={"dir"}), seed)
    if _is_current(marker, fingerprint) and (folder / PLANTED_DATA).exists():
        return folder
    x, y, truth, weights = generate_planted(cfg, seed)
    table = pa.table({**{f"f{i}": pa.array(x[:, i]) for i in range(cfg.fields)}, "label": pa.array(y)})
    tmp = folder / (PLANTED_DATA + ".tmp")
    pacsv.write_csv(table, tmp)
    np.savez_compressed(folder / PLANTED_WEIGHTS, **{k: v for k, v in weights.items()})
    (folder / PLANTED_TRUTH).write_text(json.dumps(truth, indent=2))
    os.replace(tmp, folder / PLANTED_DATA)
    marker.write_text(fingerprint)
    return folder


def load_planted_truth(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read back the ground truth and weight tables written by :func:`ensure_planted`."""
    truth = json.loads((folder / PLANTED_TRUTH).read_text())
    with np.load(folder / PLANTED_WEIGHTS) as npz:
        weights = {k: npz[k] for k in npz.files}
    return truth, weights


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_tokens(values: np.ndarray) -> pa.Array:
    """Vectorised 8-character lower-case hex strings of uint32 values (as Criteo hashes look)."""
    v = values.astype(np.uint32)
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    chars = _HEX[(v[:, None] >> shifts) & 0xF]
    offsets = np.arange(0, 8 * len(v) + 1, 8, dtype=np.int32)
    return pa.StringArray.from_buffers(len(v), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def criteo_vocab_sizes(cfg: SyntheticCriteoConfig, seed: int) -> np.ndarray:
    """Per categorical field vocabulary size, log-uniform from 4 to ``max_vocab`` (largest = max)."""
    rng = np.random.default_rng([seed, 1])
    sizes = np.exp(rng.uniform(np.log(4), np.log(cfg.max_vocab), size=26)).astype(np.int64)
    sizes[np.argmax(sizes)] = cfg.max_vocab
    return np.maximum(sizes, 2)


def criteo_like_chunk(cfg: SyntheticCriteoConfig, seed: int, chunk: int, rows: int) -> pa.Table:
    """One chunk of Criteo-shaped rows; chunk ``k`` is the same whatever the chunk count."""
    rng = np.random.default_rng([seed, 2, chunk])
    sizes = criteo_vocab_sizes(cfg, seed)
    logit = np.full(rows, -1.3)
    columns: dict[str, pa.Array] = {}
    ints = {}
    for f in range(13):
        scale = 0.5 + f * 0.25
        raw = np.floor(np.expm1(np.abs(rng.normal(0.0, scale, rows)) * 2)).astype(np.int64)
        if f == 1:
            raw -= 3  # I2 in Criteo holds small negative values
        missing = rng.random(rows) < cfg.missing_rate * (1 + f % 4)
        logit += 0.15 * np.tanh(np.log1p(np.maximum(raw, 0)) - scale) * (f % 3 == 0)
        ints[f"I{f + 1}"] = pa.array(raw, mask=missing)
    cats = {}
    ranks = []
    for f in range(26):
        rank = (rng.zipf(cfg.zipf_exponent, rows) - 1) % sizes[f]
        ranks.append(rank)
        hashed = (rank.astype(np.uint64) * np.uint64(2654435761) + np.uint64(f * 40503 + 17)) & np.uint64(0xFFFFFFFF)
        tokens = hex_tokens(hashed)
        missing = rng.random(rows) < cfg.missing_rate
        cats[f"C{f + 1}"] = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), tokens)
    # Label signal: first-order effects of frequent values plus two planted pairs.
    for f in (0, 3, 7, 12):
        logit += 0.4 * np.where(ranks[f] < 8, np.sin(ranks[f] * 1.7 + f), 0.0)
    logit += 0.6 * np.sin((ranks[1] % 13) * 0.9 + (ranks[5] % 11) * 1.3)
    logit += 0.5 * np.cos((ranks[2] % 7) * 1.1 + (ranks[9] % 5) * 2.1)
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    columns["label"] = pa.array(label)
    columns.update(ints)
    columns.update(cats)
    return pa.table(columns)


def ensure_criteo_like(path: Path, cfg: SyntheticCriteoConfig, seed: int, chunk_rows: int = 500_000) -> Path:
    """Write a Criteo-format TSV of ``cfg.rows`` rows unless an identical one exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = path.with_name(path.name + ".generator.json")
    fingerprint = _fingerprint(cfg.model_dump(mode="json", exclude={"path"}), seed)
    if _is_current(marker, fingerprint) and path.exists():
        return path
    tmp = path.with_name(path.name + ".tmp")
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    n_chunks = -(-cfg.rows // chunk_rows)
    with pacsv.CSVWriter(tmp, criteo_like_chunk(cfg, seed, 0, 1).schema, write_options=options) as writer:
        for k in tqdm(range(n_chunks), desc="generate criteo-like", unit="chunk", disable=n_chunks < 3):
            rows = min(chunk_rows, cfg.rows - k * chunk_rows)
            writer.write_table(criteo_like_chunk(cfg, seed, k, rows))
    os.replace(tmp, path)
    marker.write_text(fingerprint)
    return path
