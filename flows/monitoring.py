"""The ``monitoring`` flow: Evidently reports on the newest traffic, hourly.

replay (optional: the stand-in for live traffic) → monitor → a Prefect artifact with the
verdicts. When a condition fails (drift, A/B non-inferiority, prediction PSI) the run ends
*Failed*, and with ``monitor.trigger_retrain: true`` it first runs the retrain flow.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed

from aim.config import load_params
from flows import tasks
from flows.retrain import retrain_flow


def _verdicts(result: dict) -> str:
    lines = ["## Monitoring", "", result["summary"], "", "| condition | verdict |", "|---|---|"]
    failed = set(result.get("failed", []))
    for name in result.get("conditions", sorted(failed)):
        lines.append(f"| {name} | {'FAILED' if name in failed else 'passed'} |")
    lines += ["", f"Reports: `{result.get('reports')}` · workspace: `{result.get('workspace')}`"]
    return "\n".join(lines)


@flow(name="monitoring", log_prints=True)
def monitoring_flow(params: str = "params.yaml", overrides: list[str] | None = None, replay: bool = True):
    """Run the reports; fail the run (and optionally trigger a retrain) when a condition fails."""
    log = get_run_logger()
    if replay:
        tasks.replay(params, overrides)
    result = tasks.monitor(params, overrides)
    create_markdown_artifact(_verdicts(result), key="monitoring-verdicts", description="Evidently conditions")
    if result["passed"]:
        return result
    cfg = load_params(params, overrides)
    if cfg.monitor.trigger_retrain:
        log.warning("conditions failed (%s): triggering the retrain flow", ", ".join(result["failed"]))
        retrain_flow(params=params, overrides=overrides)
    return Failed(message=f"monitoring conditions failed: {', '.join(result['failed'])}", data=result)


if __name__ == "__main__":
    monitoring_flow()
