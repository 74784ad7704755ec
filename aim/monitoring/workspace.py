"""The Evidently workspace: one project, one run per window, and the project's dashboard.

Re-running is idempotent: the project is looked up by name and created only when missing; a
window's run is identified by the window's time range (snapshot metadata ``key``), and a run
with the same key is replaced, so the same replay monitored twice leaves one run per window
while runs of other time ranges stay as history. The dashboard tab :data:`TAB` is rebuilt from
:func:`panels` on every run (other tabs are left alone). Browse it with
``evidently ui --workspace <monitor.workspace>``.
"""

from __future__ import annotations

from pathlib import Path

from evidently.core.report import Snapshot
from evidently.sdk.models import DashboardPanelPlot, DashboardTabModel, PanelMetric
from evidently.sdk.panels import line_plot_panel, text_panel
from evidently.ui.workspace import Project, Workspace

from aim.config import MonitorConfig
from aim.monitoring.bootstrap import quantile_bounds
from aim.monitoring.frames import arm_columns
from aim.monitoring.windows import ARMS

TAB = "A/B monitoring"
DESCRIPTION = "aim-ctr: drift, per-arm quality and the A/B comparison against the DeepFM control, per replay window"


def open_project(path: Path, name: str) -> tuple[Workspace, Project]:
    """The workspace at ``path`` and its project ``name`` (created when missing, never twice)."""
    path.mkdir(parents=True, exist_ok=True)
    workspace = Workspace.create(str(path))
    found = sorted(workspace.search_project(name), key=lambda p: str(p.id))
    project = found[0] if found else workspace.create_project(name, description=DESCRIPTION)
    return workspace, project


def _by_arm(metric: str, **labels: str) -> list[PanelMetric]:
    return [
        PanelMetric(legend=arm, metric=metric, metric_labels={"classification_name": arm, **labels}) for arm in ARMS
    ]


def panels(cfg: MonitorConfig) -> list[DashboardPanelPlot]:
    """The dashboard: conditions, AUC and log loss by arm, drift, the ΔAUC interval, PSI, CTR@k."""
    lo, hi = quantile_bounds(cfg.ci_level)
    conditions = (
        f"A window passes when: share of drifted model fields < {cfg.drift_share:g}; lower {cfg.ci_level:.0%} "
        f"bound of ΔAUC (challenger − control) >= −{cfg.non_inferiority_margin:g}; PSI of the challenger's "
        f"scores against the control's < {cfg.max_prediction_psi:g}. Runs are tagged passed / failed."
    )
    return [
        text_panel("Conditions", conditions),
        line_plot_panel("AUC by arm over time", _by_arm("RocAuc"), size="half"),
        line_plot_panel("Log loss by arm over time", _by_arm("LogLoss"), size="half"),
        line_plot_panel(
            "Drifted columns over time",
            [
                PanelMetric(
                    legend="drifted columns", metric="DriftedColumnsCount", metric_labels={"value_type": "count"}
                ),
                PanelMetric(legend="share", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}),
            ],
            size="half",
        ),
        line_plot_panel(
            f"ΔAUC challenger − control, {cfg.ci_level:.0%} interval",
            [
                PanelMetric(
                    legend="lower", metric="QuantileValue", metric_labels={"column": "delta_auc", "quantile": str(lo)}
                ),
                PanelMetric(
                    legend="upper", metric="QuantileValue", metric_labels={"column": "delta_auc", "quantile": str(hi)}
                ),
            ],
            size="half",
        ),
        line_plot_panel(
            "Prediction PSI, challenger vs control",
            [PanelMetric(legend="PSI", metric="ValueDrift", metric_labels={"column": "score", "method": "psi"})],
            size="half",
        ),
        line_plot_panel(
            f"CTR of the top {cfg.top_k} by arm",
            [
                PanelMetric(
                    legend=arm, metric="MeanValue", metric_labels={"column": arm_columns(arm, cfg.top_k)["top_k_click"]}
                )
                for arm in ARMS
            ],
            size="half",
        ),
    ]


def install_dashboard(workspace: Workspace, project: Project, cfg: MonitorConfig) -> None:
    """Replace the tab :data:`TAB` and its panels with :func:`panels`; keep every other tab."""
    model = workspace.get_dashboard(project.id)
    ours = {panel_id for tab in model.tabs if tab.title == TAB for panel_id in tab.panels}
    model.tabs = [tab for tab in model.tabs if tab.title != TAB]
    model.panels = [panel for panel in model.panels if panel.id not in ours]
    new = panels(cfg)
    model.panels += new
    model.tabs.insert(0, DashboardTabModel(title=TAB, panels=[panel.id for panel in new]))
    workspace.save_dashboard(project.id, model)


def runs_by_key(workspace: Workspace, project: Project) -> dict[str, list[str]]:
    """Ids of the project's runs by their metadata ``key`` (runs without one are left out)."""
    out: dict[str, list[str]] = {}
    for run_id in workspace.list_runs(project.id):
        run = workspace.get_run(project.id, run_id)
        key = run.metadata.get("key") if run is not None else None
        if isinstance(key, str):
            out.setdefault(key, []).append(str(run_id))
    return out


def replace_runs(workspace: Workspace, project: Project, runs: list[tuple[str, Snapshot]]) -> list[str]:
    """Add each ``(key, snapshot)`` as a run, first deleting runs with that metadata ``key``; new ids."""
    existing = runs_by_key(workspace, project)
    ids = []
    for key, snapshot in runs:
        for run_id in existing.pop(key, []):
            workspace.delete_run(project.id, run_id)
        ids.append(str(workspace.add_run(project.id, snapshot).id))
    return ids
