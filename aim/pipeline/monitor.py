"""Stage ``monitor``: Evidently reports per replay window, with pass/fail conditions.

Reads the replay output (``replay.output_dir/windows``, see :mod:`aim.monitoring.windows`) and
a seeded sample of the training split of ``training_dir()`` (the reference for drift). For every
window it checks drift, per-arm quality and the A/B comparison of the challenger (treatment)
against the DeepFM control (:mod:`aim.monitoring.window`), then writes:

- ``monitor.reports_dir/window_<k>/report.html``: the window's Evidently report (all four parts
  and their tests in one file); folders of windows no longer in the index are removed;
- runs in the Evidently workspace ``monitor.workspace``, project ``monitor.project`` (one run per
  window, replaced when the same window is monitored again) with its dashboard
  (:mod:`aim.monitoring.workspace`);
- ``<metrics>/monitor.json``: the latest window's figures and verdicts, every window's record,
  the failed condition names and the overall verdict.

Failed conditions are results, not errors: :func:`run_monitor` returns them (``passed``,
``failed``) and ``aim monitor`` exits 0; the monitoring flow decides what a failure does.
Missing or malformed replay output is a :class:`~aim.errors.DataError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.data.atomic import temp_path
from aim.monitoring.frames import fields_dataset, reference_frame, single_fields
from aim.monitoring.window import CONDITIONS, WindowResult, monitor_window, window_key
from aim.monitoring.windows import read_index, read_window
from aim.monitoring.workspace import install_dashboard, open_project, replace_runs

log = logging.getLogger(__name__)

METRICS_FILE = "monitor.json"
REPORT_FILE = "report.html"


def _finite(value: Any) -> Any:
    """``value`` with NaN / infinite floats replaced by None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _write_report(result: WindowResult, reports_dir: Path) -> Path:
    """Save the window's combined snapshot as ``window_<k>/report.html`` (atomically)."""
    path = reports_dir / f"window_{result.record['window']}" / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    result.snapshot.save_html(str(tmp))
    os.replace(tmp, path)
    return path


def _remove_stale_reports(reports_dir: Path, windows: set[int]) -> None:
    """Delete ``window_<k>`` folders of windows that are no longer in the replay index."""
    for folder in reports_dir.glob("window_*"):
        suffix = folder.name.removeprefix("window_")
        if folder.is_dir() and suffix.isdigit() and int(suffix) not in windows:
            shutil.rmtree(folder)


def _summary(results: list[WindowResult], failed: list[str], reports_dir: Path) -> str:
    """One line: the overall verdict, the latest window's key figures, what failed where."""
    latest = results[-1].record
    ab, drift = latest["ab"], latest["drift"]
    lo, hi = ab["delta_auc_ci"]
    figures = (
        f"latest window {latest['window']}: drift {drift['count']}/{drift['columns']} fields, "
        f"ΔAUC {ab['delta_auc']:+.4f} [{lo:+.4f}, {hi:+.4f}], PSI {ab['psi']:.3f}"
    )
    if not failed:
        verdict = "all conditions passed"
    else:
        where = {name: [r.record["window"] for r in results if name in r.failed] for name in failed}
        verdict = "FAILED " + "; ".join(f"{name} (window {', '.join(map(str, ws))})" for name, ws in where.items())
    return f"monitored {len(results)} window(s): {verdict}; {figures}; reports in {reports_dir}"


def run_monitor(params: Params) -> dict:
    """Monitor every replay window; return ``summary``, ``passed``, ``failed``, ``windows``, paths."""
    cfg = params.monitor
    windows = read_index(params.path(params.replay.output_dir))
    prepared = PreparedData(params.training_dir())
    fields = single_fields(prepared)
    frames = [read_window(info, fields) for info in windows]  # every window checked before any work
    reference = fields_dataset(reference_frame(prepared, cfg.reference_rows, params.seed), fields)
    reports_dir = params.path(cfg.reports_dir)

    results = []
    for info, frame in zip(windows, frames, strict=True):
        result = monitor_window(frame, info, reference, fields, cfg, params.seed)
        result.record["report"] = str(_write_report(result, reports_dir).relative_to(reports_dir))
        log.info("window %d: %s", info.window, "passed" if result.passed else f"failed {', '.join(result.failed)}")
        results.append(result)
    _remove_stale_reports(reports_dir, {info.window for info in windows})

    workspace_dir = params.path(cfg.workspace)
    workspace, project = open_project(workspace_dir, cfg.project)
    install_dashboard(workspace, project, cfg)
    replace_runs(workspace, project, [(window_key(info), r.snapshot) for info, r in zip(windows, results, strict=True)])

    failed = [name for name in CONDITIONS if any(name in r.failed for r in results)]
    passed = not failed
    records = [r.record for r in results]
    summary = _summary(results, failed, reports_dir)
    metrics_path = params.path(params.metrics) / METRICS_FILE
    _write_json(
        metrics_path,
        {
            "passed": passed,
            "failed": failed,
            "conditions": list(CONDITIONS),
            "thresholds": {
                "drift_share": cfg.drift_share,
                "non_inferiority_margin": cfg.non_inferiority_margin,
                "max_prediction_psi": cfg.max_prediction_psi,
                "ci_level": cfg.ci_level,
                "top_k": cfg.top_k,
                "bootstrap_samples": cfg.bootstrap_samples,
                "drift_method": cfg.drift_method,
                "drift_threshold": cfg.drift_threshold,
            },
            "reference": {
                "folder": str(prepared.folder),
                "rows": min(cfg.reference_rows, len(prepared.split("train"))),
            },
            "latest": records[-1],
            "windows": records,
            "workspace": str(workspace_dir),
            "project": cfg.project,
            "reports": str(reports_dir),
        },
    )
    log.info(summary)
    return {
        "summary": summary,
        "passed": passed,
        "failed": failed,
        "conditions": list(CONDITIONS),
        "windows": records,
        "workspace": str(workspace_dir),
        "project": cfg.project,
        "reports": str(reports_dir),
        "metrics": str(metrics_path),
    }
