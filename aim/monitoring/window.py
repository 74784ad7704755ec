"""One replay window end to end: figures, the four Evidently reports, conditions, one snapshot.

Conditions (each an Evidently test, see :mod:`aim.monitoring.reports`):

- ``drift``: share of drifted model fields against the training window < ``drift_share``;
- ``auc_non_inferiority``: lower bound of the ΔAUC interval (challenger − control) >=
  −``non_inferiority_margin``;
- ``prediction_psi``: PSI of the challenger's scores against the control's < ``max_prediction_psi``.

A window passes when all three pass. The figures in the record come from numpy/scikit-learn
(:mod:`aim.monitoring.figures`, :mod:`aim.monitoring.bootstrap`) except the drift figures and
the PSI, which only Evidently computes; each condition's ``value`` is the value Evidently tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from evidently import Dataset
from evidently.core.report import Snapshot

from aim.config import MonitorConfig
from aim.monitoring.bootstrap import bootstrap_ab, interval
from aim.monitoring.figures import arm_figures
from aim.monitoring.reports import run_ab, run_arm_quality, run_decision, run_drift
from aim.monitoring.snapshots import combine
from aim.monitoring.windows import ARMS, WindowInfo

CONDITIONS = ("drift", "auc_non_inferiority", "prediction_psi")
SOURCE = "aim monitor"


@dataclass(frozen=True)
class WindowResult:
    """The JSON record of a window and its combined Evidently snapshot."""

    record: dict
    snapshot: Snapshot

    @property
    def passed(self) -> bool:
        """Whether every condition passed."""
        return self.record["passed"]

    @property
    def failed(self) -> list[str]:
        """Names of the conditions that failed, in :data:`CONDITIONS` order."""
        return [name for name in CONDITIONS if not self.record["conditions"][name]["passed"]]


def window_key(info: WindowInfo) -> str:
    """What identifies a window's traffic across monitor runs: its time range."""
    return f"{info.start}-{info.end}"


def _utc(epoch: int) -> datetime:
    """Naive UTC datetime (how Evidently stores snapshot timestamps)."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def monitor_window(
    frame: pd.DataFrame, info: WindowInfo, reference: Dataset, fields: list[str], cfg: MonitorConfig, seed: int
) -> WindowResult:
    """Check one window; ``seed`` and the window number seed its bootstrap."""
    timestamp = _utc(info.end)
    arms = {arm: frame[frame["arm"] == arm] for arm in ARMS}
    figures = {arm: arm_figures(rows, cfg.top_k, f"window {info.window}, arm '{arm}'") for arm, rows in arms.items()}
    drift = run_drift(frame, reference, fields, cfg, timestamp)
    quality = [run_arm_quality(rows, arm, cfg.top_k, timestamp) for arm, rows in arms.items()]
    ab = run_ab(arms["treatment"], arms["control"], cfg, timestamp)
    replicates = bootstrap_ab(arms["control"], arms["treatment"], cfg.bootstrap_samples, [seed, info.window])
    decision = run_decision(replicates, cfg, timestamp)
    control, treatment = figures["control"], figures["treatment"]
    auc = interval(treatment.auc - control.auc, replicates["delta_auc"], cfg.ci_level)
    logloss = interval(treatment.logloss - control.logloss, replicates["delta_logloss"], cfg.ci_level)
    conditions = {
        "drift": drift.figures["condition"],
        "auc_non_inferiority": decision.figures["condition"],
        "prediction_psi": ab.figures["condition"],
    }
    passed = all(c["passed"] for c in conditions.values())
    ctr_k = {arm: figures[arm].ctr_at_k for arm in ARMS}
    record = {
        "window": info.window,
        "start": info.start,
        "end": info.end,
        "rows": int(len(frame)),
        "drift": {k: v for k, v in drift.figures.items() if k != "condition"},
        "arms": {arm: f.to_dict() for arm, f in figures.items()},
        "ab": {
            "delta_auc": auc.delta,
            "delta_auc_ci": list(auc.ci),
            "delta_logloss": logloss.delta,
            "delta_logloss_ci": list(logloss.ci),
            "ci_level": cfg.ci_level,
            "bootstrap_samples": cfg.bootstrap_samples,
            "valid_samples": auc.valid,
            "resampling": "users with replacement, each arm independently (unpaired)",
            "psi": ab.figures["psi"],
            "top_k": cfg.top_k,
            "ctr_at_k": ctr_k,
            "delta_ctr_at_k": None if None in ctr_k.values() else ctr_k["treatment"] - ctr_k["control"],
        },
        "conditions": conditions,
        "passed": passed,
    }
    snapshot = combine(
        [decision.snapshot, ab.snapshot, *(q.snapshot for q in quality), drift.snapshot],
        name=f"window {info.window}: {timestamp:%Y-%m-%d %H:%M} UTC",
        timestamp=timestamp,
        metadata={
            "source": SOURCE,
            "window": str(info.window),
            "start": str(info.start),
            "end": str(info.end),
            "key": window_key(info),
        },
        tags=["aim-monitor", f"window-{info.window}", "passed" if passed else "failed"],
    )
    return WindowResult(record, snapshot)
