"""Prefect artifacts the flows publish: a metrics table and the promotion decision."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def publish_metrics(report: dict, key: str = "evaluate-metrics") -> None:
    """One row per model: test AUC, logloss, parameters, train seconds, inference rows/s."""
    rows = [
        {
            "model": name,
            "test_auc": round(r["test_auc"], 5),
            "test_logloss": round(r["test_logloss"], 5),
            "parameters": r["parameters"],
            "train_seconds": round(r["train_seconds"] or 0.0, 1),
            "inference_rows_per_s": round(r["inference_rows_per_s"]),
        }
        for name, r in report.items()
    ]
    create_table_artifact(rows, key=key, description="Test-split metrics of the challenger and the control")


def publish_decision(decision: dict, key: str = "promotion-decision") -> None:
    """The gate's decision as markdown: both AUCs, ΔAUC with its interval, p-value and reason."""
    lo, hi = decision["ci"]
    text = (
        f"## Promotion: **{decision['decision']}**\n\n"
        f"| | model | version | test AUC |\n|---|---|---|---|\n"
        f"| challenger | {decision['challenger']['name']} | {decision['challenger'].get('version')} "
        f"| {decision['challenger']['test_auc']:.4f} |\n"
        f"| control | {decision['control']['name']} | {decision['control'].get('version')} "
        f"| {decision['control']['test_auc']:.4f} |\n\n"
        f"ΔAUC {decision['delta_auc']:+.4f} (CI [{lo:+.4f}, {hi:+.4f}]), {decision['test']} p = "
        f"{decision['p_value']:.3g} (α = {decision['alpha']}, min Δ = {decision['min_delta']}).\n\n"
        f"{decision['reason']}\n\nProduction: {decision['production_before']} → {decision['production_after']}\n"
    )
    create_markdown_artifact(text, key=key, description="Decision of the promotion gate")
