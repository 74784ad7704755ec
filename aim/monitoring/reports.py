"""The four Evidently reports of a window and the figures and verdicts read back from them.

1. **Drift** (:func:`run_drift`): current = the window's model fields, reference = the training
   sample. ``DataDriftPreset`` over the fields (categorical; ``monitor.drift_method`` /
   ``drift_threshold`` or Evidently's default per column) with its tests on: the
   ``DriftedColumnsCount`` test "share of drifted columns < ``drift_share``" is condition
   ``drift``; the per-column ``ValueDrift`` tests name the drifted columns.
2. **Quality per arm** (:func:`run_arm_quality`): current = one arm's rows, no reference.
   ``RocAuc`` and ``LogLoss`` of the task named after the arm, the mean score and mean label
   (calibration in the large) and the mean click of the top-k rows (CTR@k). No conditions.
3. **A/B** (:func:`run_ab`): current = the treatment rows, reference = the control rows.
   ``ValueDrift`` of ``score`` with Evidently's ``psi`` method and the test ``PSI <
   max_prediction_psi`` is condition ``prediction_psi``; ``ClassificationPreset`` shows the
   challenger beside the control.
4. **Decision** (:func:`run_decision`): Evidently has no A/B significance test, so the bootstrap
   of :mod:`aim.monitoring.bootstrap` computes the replicates of ΔAUC and Δlog loss and this
   report receives them as its current dataset. ``QuantileValue(delta_auc, (1 − level)/2)`` is
   then the lower bound of the percentile interval *computed by Evidently*, and its test
   ``>= −non_inferiority_margin`` is condition ``auc_non_inferiority``: the challenger may trail
   the control by at most the margin, with the stated confidence. The upper bound and the
   Δlog loss bounds are reported without tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from evidently import Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import LogLoss, MeanValue, QuantileValue, RocAuc, ValueDrift
from evidently.presets import ClassificationPreset, DataDriftPreset
from evidently.tests import gte, lt

from aim.config import MonitorConfig
from aim.errors import ConfigError
from aim.monitoring.bootstrap import quantile_bounds
from aim.monitoring.frames import arm_columns, arm_dataset, fields_dataset, replicates_dataset, scored_dataset
from aim.monitoring.snapshots import SnapshotView


@dataclass(frozen=True)
class Outcome:
    """A report's snapshot with the figures and verdicts read from it."""

    snapshot: Snapshot
    figures: dict


def run_drift(
    window: pd.DataFrame, reference: Dataset, fields: list[str], cfg: MonitorConfig, timestamp: datetime
) -> Outcome:
    """Drift of the window's fields against the training sample (condition ``drift``)."""
    preset = DataDriftPreset(
        columns=fields, drift_share=cfg.drift_share, method=cfg.drift_method, threshold=cfg.drift_threshold
    )
    try:
        snapshot = Report([preset], include_tests=True).run(
            fields_dataset(window, fields), reference, timestamp=timestamp
        )
    except ValueError as exc:
        if cfg.drift_method is None:
            raise
        raise ConfigError(f"Evidently rejected monitor.drift_method '{cfg.drift_method}': {exc}") from exc
    view = SnapshotView(snapshot)
    counted = view.value("DriftedColumnsCount")
    per_column = {c: view.metric("ValueDrift", column=c) for c in fields}
    return Outcome(
        snapshot,
        {
            "share": float(counted["share"]),
            "count": int(counted["count"]),
            "columns": len(fields),
            "drifted_columns": view.failed_columns("ValueDrift"),
            "scores": {c: float(m["value"]) for c, m in per_column.items()},
            "methods": {
                c: f"{m['config'].get('method')} (threshold {m['config'].get('threshold')})"
                for c, m in per_column.items()
            },
            "condition": {
                **view.verdict("DriftedColumnsCount"),
                "value": float(counted["share"]),
                "threshold": cfg.drift_share,
            },
        },
    )


def run_arm_quality(rows: pd.DataFrame, arm: str, top_k: int, timestamp: datetime) -> Outcome:
    """AUC, log loss, mean score and label, CTR@k of one arm (no reference, no conditions)."""
    names = arm_columns(arm, top_k)
    metrics = [
        RocAuc(classification_name=arm),
        LogLoss(classification_name=arm),
        MeanValue(column=names["score"]),
        MeanValue(column=names["label"]),
        MeanValue(column=names["top_k_click"]),
    ]
    snapshot = Report(metrics).run(arm_dataset(rows, arm, top_k), None, timestamp=timestamp)
    view = SnapshotView(snapshot)
    return Outcome(
        snapshot,
        {
            "auc": float(view.value("RocAuc", classification_name=arm)),
            "logloss": float(view.value("LogLoss", classification_name=arm)),
        },
    )


def run_ab(treatment: pd.DataFrame, control: pd.DataFrame, cfg: MonitorConfig, timestamp: datetime) -> Outcome:
    """PSI of the challenger's scores against the control's (condition ``prediction_psi``)."""
    psi = ValueDrift(column="score", method="psi", threshold=cfg.max_prediction_psi, tests=[lt(cfg.max_prediction_psi)])
    snapshot = Report([psi, ClassificationPreset()]).run(
        scored_dataset(treatment), scored_dataset(control), timestamp=timestamp
    )
    view = SnapshotView(snapshot)
    value = float(view.value("ValueDrift", column="score"))
    verdict = view.verdict("ValueDrift", column="score")
    return Outcome(
        snapshot, {"psi": value, "condition": {**verdict, "value": value, "threshold": cfg.max_prediction_psi}}
    )


def run_decision(replicates: dict[str, np.ndarray], cfg: MonitorConfig, timestamp: datetime) -> Outcome:
    """Evidently's quantiles of the bootstrap replicates; the ΔAUC lower bound is tested."""
    lo, hi = quantile_bounds(cfg.ci_level)
    margin = cfg.non_inferiority_margin
    metrics = [
        QuantileValue(column="delta_auc", quantile=lo, tests=[gte(-margin)]),
        QuantileValue(column="delta_auc", quantile=hi),
        QuantileValue(column="delta_logloss", quantile=lo),
        QuantileValue(column="delta_logloss", quantile=hi),
    ]
    snapshot = Report(metrics).run(replicates_dataset(replicates), None, timestamp=timestamp)
    view = SnapshotView(snapshot)

    def bound(column: str, q: float) -> float:
        return float(view.value("QuantileValue", column=column, quantile=q))

    lower = bound("delta_auc", lo)
    return Outcome(
        snapshot,
        {
            "delta_auc_ci": [lower, bound("delta_auc", hi)],
            "delta_logloss_ci": [bound("delta_logloss", lo), bound("delta_logloss", hi)],
            "condition": {
                **view.verdict("QuantileValue", column="delta_auc", quantile=lo),
                "value": lower,
                "threshold": -margin,
            },
        },
    )
