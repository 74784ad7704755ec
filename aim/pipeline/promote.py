"""Stage ``promote``: the gate in front of production.

The challenger (``promote.challenger``, default ``search.variant``) replaces production only if
its test AUC beats the control's (``promote.control``, DeepFM) by more than ``promote.min_delta``
with a one-sided paired test (DeLong or bootstrap, :mod:`aim.training.significance`) below
``promote.alpha``. The decision depends only on the two models' test predictions written by
``aim evaluate`` and the test labels, so it is cheap and reproducible.

Registry effects (:class:`aim.registry.ModelRegistry` at ``promote.registry``):
- an empty registry first gets the control registered and made production: it is what serves
  until a challenger wins;
- the challenger is always registered (every candidate is kept with its test metrics), and so is
  the control it was judged against; registering the very same checkpoint, data version and
  metrics again reuses the existing version instead of copying it twice;
- production switches to the challenger on promotion and is left untouched otherwise.

The decision, both AUCs, ΔAUC with its confidence interval, the p-value and the reason go to
``<metrics>/promotion.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.errors import ConfigError, ModelError
from aim.pipeline.models import evaluation_dir, load_predictions
from aim.registry import ModelRegistry, sha256_file, write_json_atomic
from aim.training.checkpoint import WEIGHTS
from aim.training.metrics import score_metrics
from aim.training.significance import AUCComparison, compare_aucs

log = logging.getLogger(__name__)

TEST_NAMES = {"delong": "DeLong", "bootstrap": "bootstrap"}


def promotion_path(params: Params) -> Path:
    """Where ``run_promote`` writes its report."""
    return params.path(params.metrics) / "promotion.json"


def _predictions(params: Params, name: str, rows: int) -> np.ndarray:
    """Test predictions of ``name``; they must cover every test row and be newer than the model."""
    scores = np.asarray(load_predictions(params, name), dtype=np.float64).ravel()
    if len(scores) != rows:
        raise ModelError(
            f"test predictions of '{name}' have {len(scores):,} rows but the test split of "
            f"{params.training_dir()} has {rows:,}: rerun `aim evaluate` on the current data"
        )
    weights = params.path(params.artifacts) / "models" / name / WEIGHTS
    predictions = evaluation_dir(params) / "predictions" / f"{name}.npy"
    if weights.exists() and weights.stat().st_mtime > predictions.stat().st_mtime:
        log.warning("%s is newer than %s: the predictions may be stale, rerun `aim evaluate`", weights, predictions)
    return scores


def _register(registry: ModelRegistry, params: Params, name: str, metrics: dict, data_version: str | None) -> str:
    """Register the trained model ``name`` (or reuse the version holding exactly this checkpoint)."""
    folder = params.path(params.artifacts) / "models" / name
    if not (folder / WEIGHTS).exists():
        raise ModelError(
            f"{folder / WEIGHTS} is missing: train '{name}' (`aim train --model {name}` or `aim retrain`) "
            "and evaluate it before promoting"
        )
    existing = registry.find(name, sha256_file(folder / WEIGHTS), data_version, metrics)
    if existing:
        log.info("%s is already registered as %s", name, existing)
        return existing
    version = registry.register(folder, name=name, metrics=metrics, data_version=data_version)
    log.info("registered %s as %s in %s", name, version, registry.root)
    return version


def _reason(result: AUCComparison, challenger: str, control: str, promoted: bool) -> str:
    """One sentence saying why the gate decided as it did."""
    test = TEST_NAMES[result.test]
    gain = f"ΔAUC {result.delta:+.4f}"
    p = f"one-sided {test} p = {result.p_value:.3g}"
    if promoted:
        return (
            f"{challenger} beats {control}: {gain} is above min_delta {result.min_delta:g} "
            f"and {p} is below alpha {result.alpha:g}."
        )
    problems = []
    if result.delta <= result.min_delta:
        problems.append(f"{gain} is not above min_delta {result.min_delta:g}")
    if result.p_value >= result.alpha:
        problems.append(f"{p} is not below alpha {result.alpha:g}")
    return f"{challenger} is not shown to beat {control}: " + " and ".join(problems) + "."


def run_promote(params: Params) -> dict:
    """Judge the challenger against the control, register both, switch production on a win.

    Writes ``<metrics>/promotion.json`` and returns its fields plus ``summary`` (one line).
    """
    cfg = params.promote
    challenger, control = cfg.challenger or params.search.variant, cfg.control
    if challenger == control:
        raise ConfigError(f"promote.challenger and promote.control are both '{control}': name two different models")
    data = PreparedData(params.training_dir())
    labels = np.asarray(data.split("test").labels)
    data_version = data.meta.get("data_version")
    scores = {name: _predictions(params, name, len(labels)) for name in (challenger, control)}
    result = compare_aucs(
        labels,
        scores[challenger],
        scores[control],
        test=cfg.test,
        min_delta=cfg.min_delta,
        alpha=cfg.alpha,
        samples=cfg.bootstrap_samples,
        seed=params.seed,
    )
    promoted = result.significant
    reason = _reason(result, challenger, control, promoted)

    registry = ModelRegistry(params.path(cfg.registry))
    before = registry.production()
    metrics = {
        name: {**{f"test_{k}": v for k, v in score_metrics(labels, scores[name]).items()}, "test_rows": len(labels)}
        for name in (challenger, control)
    }
    control_version = _register(registry, params, control, metrics[control], data_version)
    if before is None:
        first = f"first production model: the control {control} serves until a challenger wins"
        registry.promote(control_version, first)
    challenger_version = _register(registry, params, challenger, metrics[challenger], data_version)
    if promoted and registry.production() != challenger_version:
        registry.promote(challenger_version, reason)
    after = registry.production()

    report = {
        "decision": "promoted" if promoted else "rejected",
        "challenger": {"name": challenger, "version": challenger_version, "test_auc": result.auc_challenger},
        "control": {"name": control, "version": control_version, "test_auc": result.auc_control},
        "delta_auc": result.delta,
        "se": result.se,
        "ci": list(result.ci),
        "p_value": result.p_value,
        "test": result.test,
        "alpha": result.alpha,
        "min_delta": result.min_delta,
        "reason": reason,
        "production_before": before,
        "production_after": after,
        "control_installed": before is None,
        "data_version": data_version,
        "registry": str(registry.root),
    }
    out = promotion_path(params)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, report)
    return {"summary": _summary(report), **report}


def _summary(report: dict) -> str:
    """One human line: the decision, both AUCs, ΔAUC with its interval and where production is."""
    ch, co = report["challenger"], report["control"]
    lo, hi = report["ci"]
    level = 100 * (1 - report["alpha"])
    figures = (
        f"test AUC {ch['test_auc']:.4f} vs {co['name']} {co['test_auc']:.4f}, ΔAUC {report['delta_auc']:+.4f} "
        f"({level:g}% CI [{lo:+.4f}, {hi:+.4f}]), {TEST_NAMES[report['test']]} p = {report['p_value']:.3g}"
    )
    installed = ""
    if report["control_installed"]:
        installed = f"; control {co['name']} {co['version']} installed as first production"
    if report["decision"] == "promoted":
        return f"promoted {ch['name']} {ch['version']} to production: {figures}{installed}"
    return f"rejected {ch['name']} {ch['version']}: {figures}; production stays {report['production_after']}{installed}"
