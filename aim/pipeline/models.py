"""Stages ``search-interaction``, ``search-embed``, ``retrain``, ``train`` and ``evaluate``.

Each stage reads ``params.yaml`` (a :class:`Params`) and the previous stage's artefact, and writes
its own: the CLI (and so DVC) and the Prefect tasks call these functions and nothing else.

Artefacts under ``params.artifacts``:
- ``search/interaction.json`` (+ heat-map, AUC curve): what search-interaction kept;
- ``architecture.json`` (+ ``alpha_heatmap.png``, ``embedding_widths.png``): the final architecture;
- ``models/<name>/``: checkpoint (``model.pt`` + ``config.json``), ``train.json`` and ``auc.png``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_curve

from aim.config import GRDAConfig, Params
from aim.data.arrays import PreparedData
from aim.errors import ConfigError, ModelError
from aim.models import BASE_MODELS
from aim.nn import kernels
from aim.search.architecture import Architecture
from aim.search.plots import alpha_heatmap, width_bars
from aim.search.stages import (
    EmbedSearchSettings,
    GRDASettings,
    InteractionSearchSettings,
    RetrainSettings,
    retrain,
    search_embed,
    search_interaction,
)
from aim.search.variants import VARIANTS
from aim.training.batches import resolve_device
from aim.training.checkpoint import build_model, load_checkpoint, save_checkpoint
from aim.training.distributed import is_main
from aim.training.loop import TrainResult, TrainSettings, train
from aim.training.metrics import predict, score_metrics
from aim.training.plots import auc_curve

log = logging.getLogger(__name__)

TRANSFER = {"deepfm_transfer": "deepfm", "ipnn_transfer": "ipnn"}  # AIM paper section 4.6


def _data(params: Params) -> PreparedData:
    return PreparedData(params.training_dir())


def _artifacts(params: Params) -> Path:
    return params.path(params.artifacts)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _history(result: TrainResult) -> dict:
    return {
        "best_epoch": result.best_epoch,
        "best_valid_auc": result.best_auc,
        "seconds": result.seconds,
        "history": result.history,
    }


def _grda(cfg: GRDAConfig) -> GRDASettings:
    return GRDASettings(lr=cfg.lr, c=cfg.c, mu=cfg.mu)


def _compute(params: Params) -> dict:
    c = params.compute
    if c.threads:
        torch.set_num_threads(c.threads)
    kernels.configure(c.cpu_kernels)
    sparse = None if c.sparse_embeddings == "auto" else c.sparse_embeddings
    return {"sparse_embeddings": sparse, "compile": c.compile, "autocast": c.autocast, "seed": params.seed}


def _search_train(params: Params) -> TrainSettings:
    s = params.search
    return TrainSettings(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, patience=s.epochs, **_compute(params))


def _train(params: Params) -> TrainSettings:
    t = params.train
    return TrainSettings(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, patience=t.patience, **_compute(params))


def _fields(data: PreparedData) -> list[list]:
    return [[f["name"], f["vocab_size"]] for f in data.fields]


def run_search_interaction(params: Params) -> Architecture:
    """FIS (+ IFS) order by order up to ``search.max_order``; writes ``search/interaction.json``."""
    variant = VARIANTS[params.search.variant]
    data, device = _data(params), resolve_device(params.device)
    settings = InteractionSearchSettings(
        dim=params.model.dim,
        functions=variant.functions,
        max_order=params.search.max_order,
        top_k=params.search.top_k,
        hidden=tuple(params.model.hidden) if variant.search_deep else (),
        alpha_init=params.search.alpha_init,
        grda=_grda(params.search.interaction_grda),
        train=_search_train(params),
    )
    arch, results = search_interaction(data, settings, device)
    if not is_main():  # under torchrun only rank 0 writes
        return arch
    folder = _artifacts(params) / "search"
    arch.save(folder / "interaction.json")
    alpha_heatmap(arch, folder / "alpha_heatmap.png")
    auc_curve({f"order {i + 2}": r.history for i, r in enumerate(results)}, folder / "auc.png")
    summary = {
        "variant": params.search.variant,
        "seconds": sum(r.seconds for r in results),
        "kept": {str(p): sum(i.order == p for i in arch.interactions) for p in range(2, params.search.max_order + 1)},
        "share_kept": {str(p): arch.share_kept(p) for p in range(2, params.search.max_order + 1)},
        "orders": [_history(r) for r in results],
    }
    _write_json(params.path(params.metrics) / "search_interaction.json", summary)
    return arch


def run_search_embed(params: Params) -> Architecture:
    """EDS on the kept rows (variants with EDS); writes the final ``architecture.json`` and plots."""
    variant = VARIANTS[params.search.variant]
    folder = _artifacts(params)
    arch = Architecture.load(folder / "search" / "interaction.json")
    result = None
    if variant.eds:
        settings = EmbedSearchSettings(
            beta_init=params.search.beta_init, grda=_grda(params.search.embed_grda), train=_search_train(params)
        )
        arch, result = search_embed(_data(params), arch, settings, resolve_device(params.device))
    else:
        log.info("variant %s has no embedding dimension search: every field keeps %d", params.search.variant, arch.dim)
    if not is_main():
        return arch
    arch.save(folder / "architecture.json")
    alpha_heatmap(arch, folder / "alpha_heatmap.png")
    width_bars(arch, folder / "embedding_widths.png")
    summary = {
        "variant": params.search.variant,
        "eds": variant.eds,
        "widths": arch.widths,
        "seconds": result.seconds if result else 0.0,
        **({"search": _history(result)} if result else {}),
    }
    _write_json(params.path(params.metrics) / "search_embed.json", summary)
    return arch


def _save_model(
    params: Params, name: str, model: torch.nn.Module, config: dict, result: TrainResult, extra: dict | None = None
) -> dict:
    summary = {
        "model": name,
        **_history(result),
        "parameters": sum(p.numel() for p in model.parameters()),
        **(extra or {}),
    }
    summary["train_seconds"] = summary.get("search_seconds", 0.0) + result.seconds
    if not is_main():
        return summary
    folder = _artifacts(params) / "models" / name
    save_checkpoint(model, config, folder)
    _write_json(folder / "train.json", summary)
    auc_curve({name: result.history}, folder / "auc.png")
    return summary


def run_retrain(params: Params) -> dict:
    """Train the model that ships from ``architecture.json``; checkpoint in ``models/<variant>``."""
    variant = VARIANTS[params.search.variant]
    arch = Architecture.load(_artifacts(params) / "architecture.json")
    data = _data(params)
    settings = RetrainSettings(
        hidden=tuple(params.model.hidden) if variant.retrain_deep else (),
        deep=variant.retrain_deep or "stacked",
        dropout=params.model.dropout,
        alpha_init=params.retrain.alpha_init,
        train=_train(params),
    )
    model, result, config = retrain(data, arch, settings, resolve_device(params.device))
    config["fields"] = _fields(data)
    search_seconds = 0.0
    for stage in ("search_interaction", "search_embed"):
        path = params.path(params.metrics) / f"{stage}.json"
        if path.exists():
            search_seconds += json.loads(path.read_text()).get("seconds", 0.0)
    embedding = sum(p.numel() for p in model.embedding.parameters())
    summary = _save_model(
        params,
        params.search.variant,
        model,
        config,
        result,
        {
            "search_seconds": search_seconds,
            "embedding_parameters": embedding,
            "widths": arch.widths,
            "share_kept": {str(p): arch.share_kept(p) for p in range(2, params.search.max_order + 1)},
        },
    )
    if is_main():
        _write_json(params.path(params.metrics) / "retrain.json", {k: v for k, v in summary.items() if k != "history"})
    return summary


def run_train(params: Params, name: str) -> dict:
    """Train a base model (``lr``, ``fm``, ``fwfm``, ``deepfm``, ``ipnn``) or a transfer variant
    (``deepfm_transfer``, ``ipnn_transfer``: the base model on ``architecture.json``'s rows)."""
    base = TRANSFER.get(name, name)
    if base not in BASE_MODELS:
        known = ", ".join([*BASE_MODELS, *TRANSFER])
        raise ConfigError(f"unknown model '{name}'; choose one of {known}")
    data = _data(params)
    kwargs = {
        "vocab_sizes": data.vocab_sizes,
        "n_multi_hot": data.n_multi_hot,
        "dim": params.model.dim,
        "hidden": list(params.model.hidden),
        "dropout": params.model.dropout,
    }
    if name in TRANSFER:
        kwargs["architecture"] = Architecture.load(_artifacts(params) / "architecture.json").to_dict()
    config = {"model": base, "kwargs": kwargs, "fields": _fields(data)}
    torch.manual_seed(params.seed)
    model = build_model(config)
    result = train(model, data, _train(params), resolve_device(params.device))
    return _save_model(params, name, model, config, result)


def evaluation_dir(params: Params) -> Path:
    """Where ``evaluate`` leaves per-model test predictions and the ROC / training-curve plot data."""
    return _artifacts(params) / "evaluate"


def load_predictions(params: Params, name: str) -> np.ndarray:
    """Test-split click probabilities of model ``name`` as written by ``aim evaluate``."""
    path = evaluation_dir(params) / "predictions" / f"{name}.npy"
    if not path.exists():
        raise ModelError(f"no test predictions for '{name}' at {path}: run `aim evaluate` with that model first")
    return np.load(path)


def _roc_points(labels: np.ndarray, scores: np.ndarray, points: int = 200) -> list[dict]:
    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).round().astype(int))
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i])} for i in keep]


def _write_plot_data(params: Params, name: str, labels: np.ndarray, scores: np.ndarray, info: dict) -> None:
    """ROC points and the validation curve per epoch, in the shape ``dvc plots`` reads."""
    folder = evaluation_dir(params)
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    np.save(folder / "predictions" / f"{name}.npy", scores.astype(np.float32))
    _write_json(folder / "roc" / f"{name}.json", {"roc": _roc_points(labels, scores)})
    curve = [
        {"epoch": h["epoch"], "valid_auc": h["auc"], "valid_logloss": h["logloss"]} for h in info.get("history", [])
    ]
    _write_json(folder / "training" / f"{name}.json", {"training": curve})


def run_evaluate(params: Params) -> dict:
    """Score the trained models on the test split; writes ``metrics/evaluate.json`` and, per model,
    the test predictions, ROC points and training curve under ``<artifacts>/evaluate/``."""
    data, device = _data(params), resolve_device(params.device)
    models_dir = _artifacts(params) / "models"
    names = params.evaluate.models or sorted(p.name for p in models_dir.glob("*") if (p / "config.json").exists())
    if not names:
        raise ModelError(f"no trained models under {models_dir}: run `aim train` or `aim retrain` first")
    test, report = data.split("test"), {}
    labels = np.asarray(test.labels)
    for name in names:
        model, config = load_checkpoint(models_dir / name, device)
        if config.get("fields") != _fields(data):
            raise ModelError(
                f"model '{name}' was trained on other vocabularies than {data.folder}: retrain it "
                f"(`aim train --model {name}` or `aim retrain`)"
            )
        info = json.loads((models_dir / name / "train.json").read_text())
        start = time.perf_counter()
        scores = predict(model, test, device, params.evaluate.batch_size)
        seconds = time.perf_counter() - start
        metrics = score_metrics(labels, scores)
        log.info("%s: test AUC %.4f logloss %.4f", name, metrics["auc"], metrics["logloss"])
        _write_plot_data(params, name, labels, scores, info)
        report[name] = {
            "test_auc": metrics["auc"],
            "test_logloss": metrics["logloss"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": info.get("train_seconds", info.get("seconds")),
            "inference_rows_per_s": float(len(labels) / max(seconds, 1e-9)),
        }
    _write_json(params.path(params.metrics) / "evaluate.json", report)
    return report
