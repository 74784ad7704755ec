"""FuxiCTR 2.3.10 DeepFM on our prepared data; runs INSIDE bench/.venv-fuxictr (never imports ``aim``).

Usage: ``python bench/fuxictr_runner.py --prepared DIR --out FILE [--settings JSON] [--work DIR]``.

Preparation (not timed): our ``parquet/{train,valid}.parquet`` (truncated to ``max_rows``) are
rewritten as FuxiCTR's standard pipeline leaves them (``build_dataset`` with the default
``data_block_size=0``): one ``{split}.parquet`` per split (int64 id columns, float label ``label``)
plus ``feature_map.json`` in ``<work>/<dataset_id>/``. Every field is a ``categorical`` feature whose
vocabulary is exactly our ids, ``vocab_size`` = our ``vocab_size``, no ``padding_idx`` (id 0 is our
OOV id, trained like ours), so both models have the same embedding tables. The data loader is the one
2.3.10's ``RankDataLoader`` picks for that pipeline: ``ParquetDataLoader`` (Ray Data). The pip
wheel ships no model zoo, so ``DeepFM`` below is model_zoo/DeepFM/DeepFM_torch/src/DeepFM.py verbatim
(FeatureEmbedding + FactorizationMachine + MLP_Block on FuxiCTR's ``BaseModel``).

Timed regions (``time.perf_counter``; CUDA synchronised at the region ends):

- train: FuxiCTR's own ``BaseModel.train_epoch`` for one epoch over the train split (shuffle on,
  ``batch_size``), with evaluation switched off by ``_eval_steps`` > batches per epoch (so no
  ``eval_step``, no checkpoint). It includes creating the loader's iterator -- for one parquet file
  2.3.10's ``ParquetDataLoader.__iter__`` does ``materialize().random_shuffle()``: Ray reads the
  split into its object store and shuffles it globally, lazily, while the first batch is awaited --,
  every batch fetch, and per batch ``train_step`` (zero_grad, forward, BCE loss, backward,
  ``clip_grad_norm_`` at ``max_gradient_norm``, Adam step) plus its ``loss.item()``.
  data_s: time inside ``iter()`` / ``next()`` of the loader plus moving the batch to the device
  (so ``get_inputs``' own ``.to(device)`` is a no-op); compute_s = seconds - data_s.
  With ``epochs`` > 1, ``train`` holds the last epoch's figures and ``train.epochs`` all of them.
- inference: FuxiCTR's own ``BaseModel.predict`` over the valid split (eval mode, ``no_grad``,
  ``infer_batch_size``, no shuffle; Ray streams the file): loader iteration + forward + its collection
  of ``y_pred`` into a numpy array; data_s / compute_s split as for train. AUC / logloss come after.

Each region also reports first_batch_s (the wait for its first batch, inside data_s), batches, and
cpu_s (``time.process_time`` of this process: all its threads, not Ray's worker processes).
Not timed: data preparation, Ray start-up and loader construction, model construction, metrics.
peak_rss_mb is ``ru_maxrss`` of this process only (Ray's raylet and worker processes are not in it);
loadavg_1m tells how busy the (shared) machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch
from fuxictr.features import FeatureMap
from fuxictr.metrics import evaluate_metrics
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.layers import FactorizationMachine, FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.version import __version__ as FUXICTR_VERSION

DEFAULT_SETTINGS: dict = {
    "embedding_dim": 10,
    "hidden_units": [400, 400, 400],
    "hidden_activations": "ReLU",
    "batch_norm": True,
    "net_dropout": 0.0,
    "embedding_regularizer": None,
    "net_regularizer": None,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "loss": "binary_crossentropy",
    "batch_size": 4096,
    "shuffle": True,
    "infer_batch_size": 8192,
    "epochs": 1,
    "seed": 2026,
    "threads": None,  # None: os.cpu_count()
    "device": "auto",  # auto: cuda if available, else cpu
    "max_rows": None,  # truncate train and valid (smoke runs)
    "max_gradient_norm": 10.0,  # FuxiCTR's fit() default, applied in its train_step
}
LABEL = "label"


class DeepFM(BaseModel):
    """DeepFM as FuxiCTR's model_zoo/DeepFM/DeepFM_torch/src/DeepFM.py defines it (a tuple default aside)."""

    def __init__(
        self,
        feature_map,
        model_id="DeepFM",
        gpu=-1,
        learning_rate=1e-3,
        embedding_dim=10,
        hidden_units=(64, 64, 64),
        hidden_activations="ReLU",
        net_dropout=0,
        batch_norm=False,
        embedding_regularizer=None,
        net_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            feature_map,
            model_id=model_id,
            gpu=gpu,
            embedding_regularizer=embedding_regularizer,
            net_regularizer=net_regularizer,
            **kwargs,
        )
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.fm = FactorizationMachine(feature_map)
        self.mlp = MLP_Block(
            input_dim=feature_map.sum_emb_out_dim(),
            output_dim=1,
            hidden_units=list(hidden_units),
            hidden_activations=hidden_activations,
            output_activation=None,
            dropout_rates=net_dropout,
            batch_norm=batch_norm,
        )
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):
        """FM (with its LR term) plus the MLP on the flattened embeddings, then sigmoid."""
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        y_pred = self.fm(X, feature_emb)
        y_pred += self.mlp(feature_emb.flatten(start_dim=1))
        y_pred = self.output_activation(y_pred)
        return {"y_pred": y_pred}


class TimedBatches:
    """Wraps a FuxiCTR loader: times ``iter``/``next`` plus the device move, keeps labels in order."""

    def __init__(self, loader, device: torch.device, keep_labels: bool = False):
        self.loader, self.device, self.keep_labels = loader, device, keep_labels
        self.data_s = 0.0
        self.first_batch_s: float | None = None
        self.batches = 0
        self.labels: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        start = time.perf_counter()
        it = iter(self.loader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                self.data_s += time.perf_counter() - start
                return
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            waited = time.perf_counter() - start
            self.data_s += waited
            if self.first_batch_s is None:
                self.first_batch_s = waited
            if self.keep_labels:
                self.labels.append(batch[LABEL])
            self.batches += 1
            yield batch
            start = time.perf_counter()


def resolve_settings(overrides: dict) -> dict:
    """Defaults plus overrides; unknown keys are an error (a typo must not pass silently)."""
    unknown = set(overrides) - set(DEFAULT_SETTINGS)
    if unknown:
        raise SystemExit(f"unknown settings: {sorted(unknown)}")
    settings = {**DEFAULT_SETTINGS, **overrides}
    if settings["threads"] is None:
        settings["threads"] = os.cpu_count()
    if settings["device"] == "auto":
        settings["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return settings


def feature_specs(meta: dict) -> list[dict]:
    """FuxiCTR feature_map entries: categorical, vocabulary = our ids (no padding row)."""
    return [
        {f["name"]: {"source": "", "type": "categorical", "vocab_size": int(f["vocab_size"])}} for f in meta["fields"]
    ]


def write_split(source: Path, target: Path, names: list[str], max_rows: int | None) -> int:
    """Our split parquet -> FuxiCTR's: int64 ids, float label, at most ``max_rows`` rows."""
    table = pq.read_table(source, columns=[*names, LABEL])
    if max_rows is not None:
        table = table.slice(0, max_rows)
    columns = [table[n].cast(pa.int64()) for n in names] + [table[LABEL].cast(pa.float64())]
    out = pa.table(columns, names=[*names, LABEL])
    tmp = target.with_suffix(".tmp")
    pq.write_table(out, tmp)
    tmp.replace(target)
    return out.num_rows


def prepare(prepared: Path, work: Path, max_rows: int | None) -> tuple[Path, str, dict[str, int]]:
    """Write FuxiCTR's data folder once per (data version, max_rows); returns (folder, dataset_id, rows)."""
    meta = json.loads((prepared / "meta.json").read_text())
    dataset_id = f"aim_{meta.get('data_version', 'data')}_{max_rows or 'all'}"
    data_dir = work / dataset_id
    done = data_dir / "rows.json"
    if done.exists():
        return data_dir, dataset_id, json.loads(done.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    names = [f["name"] for f in meta["fields"]]
    source, target = prepared / "parquet", data_dir
    rows = {
        s: write_split(source / f"{s}.parquet", target / f"{s}.parquet", names, max_rows) for s in ("train", "valid")
    }
    specs = feature_specs(meta)
    feature_map = {
        "dataset_id": dataset_id,
        "num_fields": len(specs),
        "total_features": sum(f["vocab_size"] for f in meta["fields"]),
        "input_length": len(specs),
        "labels": [LABEL],
        "features": specs,
    }
    (data_dir / "feature_map.json").write_text(json.dumps(feature_map, indent=4))
    done.write_text(json.dumps(rows))
    return data_dir, dataset_id, rows


def build_model(feature_map: FeatureMap, settings: dict, work: Path) -> DeepFM:
    """DeepFM with the settings; ``model_root`` only names an (unused) checkpoint path."""
    seed_everything(seed=settings["seed"])
    return DeepFM(
        feature_map,
        gpu=0 if settings["device"] == "cuda" else -1,
        learning_rate=settings["learning_rate"],
        embedding_dim=settings["embedding_dim"],
        hidden_units=settings["hidden_units"],
        hidden_activations=settings["hidden_activations"],
        net_dropout=settings["net_dropout"],
        batch_norm=settings["batch_norm"],
        embedding_regularizer=settings["embedding_regularizer"],
        net_regularizer=settings["net_regularizer"],
        optimizer=settings["optimizer"],
        loss=settings["loss"],
        metrics=["logloss", "AUC"],
        model_root=str(work / "model_ckpt"),
        verbose=0,
    )


def loaders(feature_map: FeatureMap, data_dir: Path, settings: dict):
    """Train loader (shuffled, batch_size) and valid loader (ordered, infer_batch_size) via RankDataLoader."""
    train, _ = RankDataLoader(
        feature_map,
        stage="train",
        train_data=str(data_dir / "train.parquet"),
        batch_size=settings["batch_size"],
        shuffle=settings["shuffle"],
        data_format="parquet",
    )
    valid = RankDataLoader(
        feature_map,
        stage="test",
        test_data=str(data_dir / "valid.parquet"),
        batch_size=settings["infer_batch_size"],
        shuffle=False,
        data_format="parquet",
    )
    return train, valid


def sync(device: torch.device) -> None:
    """Wait for queued device work so a region's end time is real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def region(seconds: float, cpu_s: float, rows: int, timed: TimedBatches) -> dict:
    """Figures of one timed region."""
    return {
        "seconds": seconds,
        "cpu_s": cpu_s,
        "samples_per_s": rows / seconds if seconds > 0 else None,
        "data_s": timed.data_s,
        "compute_s": seconds - timed.data_s,
        "first_batch_s": timed.first_batch_s,
        "batches": timed.batches,
    }


def train_one_epoch(model: DeepFM, train_gen, settings: dict, epoch: int, rows: int) -> dict:
    """FuxiCTR's own train_epoch with evaluation switched off; the region's figures."""
    timed = TimedBatches(train_gen, model.device)
    model._max_gradient_norm = settings["max_gradient_norm"]  # what fit() sets
    model._stop_training = False
    model._epoch_index = epoch
    model._total_steps = 0
    model._eval_steps = len(train_gen) + 1  # never reached: no eval_step, no checkpoint
    sync(model.device)
    start, cpu = time.perf_counter(), time.process_time()
    model.train_epoch(timed)
    sync(model.device)
    return region(time.perf_counter() - start, time.process_time() - cpu, rows, timed)


def predict_valid(model: DeepFM, valid_gen, rows: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """FuxiCTR's own predict over the valid split; (the region's figures, labels, predictions)."""
    timed = TimedBatches(valid_gen, model.device, keep_labels=True)
    sync(model.device)
    start, cpu = time.perf_counter(), time.process_time()
    y_pred = model.predict(timed)
    sync(model.device)
    figures = region(time.perf_counter() - start, time.process_time() - cpu, rows, timed)
    y_true = torch.cat(timed.labels).cpu().numpy().astype(np.float64)
    return figures, y_true, y_pred


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters, as FuxiCTR's count_parameters counts them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run(prepared: Path, settings: dict, work: Path) -> dict:
    """Prepare, train one epoch per ``epochs``, predict valid; the result dict."""
    torch.set_num_threads(settings["threads"])
    data_dir, dataset_id, rows = prepare(prepared, work, settings["max_rows"])
    feature_map = FeatureMap(dataset_id, str(data_dir))
    feature_map.load(str(data_dir / "feature_map.json"), {"embedding_dim": settings["embedding_dim"]})
    model = build_model(feature_map, settings, work)
    train_gen, valid_gen = loaders(feature_map, data_dir, settings)
    load_before = os.getloadavg()[0]
    epochs = [train_one_epoch(model, train_gen, settings, e, rows["train"]) for e in range(settings["epochs"])]
    inference, y_true, y_pred = predict_valid(model, valid_gen, rows["valid"])
    scores = evaluate_metrics(y_true, y_pred, ["logloss", "AUC"])
    return {
        "library": "fuxictr",
        "version": FUXICTR_VERSION,
        "model": "DeepFM",
        "data_loader": type(train_gen).__name__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "rows": rows,
        "train": epochs[-1] if len(epochs) == 1 else {**epochs[-1], "epochs": epochs},
        "inference": inference,
        "parameters": count_parameters(model),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "valid_auc": float(scores["AUC"]),
        "valid_logloss": float(scores["logloss"]),
        "loadavg_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "settings": settings,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="our prepared data folder")
    parser.add_argument("--out", type=Path, required=True, help="result JSON file")
    parser.add_argument("--settings", default="{}", help="JSON object of settings overriding the defaults")
    parser.add_argument("--work", type=Path, default=None, help="FuxiCTR data folder (default: PREPARED/../fuxictr)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run and write the result JSON."""
    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read when the loader starts Ray
    settings = resolve_settings(json.loads(args.settings))
    work = args.work or args.prepared.resolve().parent / "fuxictr"
    try:
        result = run(args.prepared, settings, work)
    finally:
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
