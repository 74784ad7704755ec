"""The Prefect flows, run for real on a small click log under ``prefect_test_harness``:
every stage runs, the search stages are cached on (data version, params), the retrain flow
reuses the architecture, a failing batch stops the flow before anything downstream, and the
deployments declared in ``prefect.yaml`` load with their schedules."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from flows.monitoring import monitoring_flow
from flows.retrain import retrain_flow
from flows.serve import declared_deployments, to_runner_deployments
from flows.training import training_flow
from tests.conftest import EVENTS_TABLE, write_events_csv, write_params

SMALL = {
    "model": {"dim": 4, "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 512, "patience": 0},
    "search": {"max_order": 3, "epochs": 1, "batch_size": 512},
    "features": {"enabled": True},
    "evaluate": {"batch_size": 4096},
    "serve": {"treatment_share": 0.5},  # enough users on each arm of the small replay
}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    storage = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}), prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def project(tmp_path_factory, harness):
    folder = tmp_path_factory.mktemp("flow-project")
    write_events_csv(folder / "events.csv", rows=3000, seed=3)
    params = write_params(folder, {"source": "table", "table": EVENTS_TABLE}, seed=5, **SMALL)
    return folder, str(params)


def _task_runs(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run for run in runs}


def _production(folder):
    path = folder / "models" / "registry" / "production.json"
    return path.read_bytes() if path.exists() else None


def test_training_flow_runs_every_stage_and_publishes_artifacts(project):
    folder, params = project
    state = training_flow(params=params, return_state=True)
    assert state.is_completed(), state.message
    decision = state.result()
    assert decision["decision"] in {"promoted", "rejected"}
    for name in ("validate", "features", "evaluate", "promotion"):
        assert (folder / "metrics" / f"{name}.json").exists(), name
    assert json.loads((folder / "metrics" / "promotion.json").read_text())["decision"] == decision["decision"]
    assert (folder / "artifacts" / "architecture.json").exists()
    assert _production(folder) is not None  # the control serves until a challenger wins
    runs = _task_runs(state.state_details.flow_run_id)
    expected = {"prepare", "validate", "features", "train-control", "search-interaction", "search-embed"}
    assert expected | {"retrain", "evaluate", "promote"} <= set(runs)
    assert all(run.state.is_completed() for run in runs.values())
    for gpu_stage in ("search-interaction", "search-embed", "retrain", "train-control"):
        assert "gpu" in runs[gpu_stage].tags
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"evaluate-metrics", "promotion-decision"} <= keys


def test_second_training_run_answers_search_stages_from_the_cache(project):
    folder, params = project
    architecture = folder / "artifacts" / "architecture.json"
    before = architecture.read_text()
    architecture.unlink()  # the cache hands the artefact back
    state = training_flow(params=params, return_state=True)
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["search-interaction"].state.name == "Cached"
    assert runs["search-embed"].state.name == "Cached"
    assert architecture.read_text() == before
    # a search parameter changes the cache key: the search runs again
    changed = training_flow(params=params, overrides=["search.interaction_grda.c=0.05"], return_state=True)
    assert changed.is_completed(), changed.message
    assert _task_runs(changed.state_details.flow_run_id)["search-interaction"].state.name == "Completed"


def test_retrain_flow_keeps_the_architecture_and_skips_the_search(project):
    folder, params = project
    architecture = (folder / "artifacts" / "architecture.json").read_text()
    state = retrain_flow(params=params, return_state=True)
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    assert "search-interaction" not in runs and "search-embed" not in runs
    assert {"prepare", "validate", "features", "train-control", "retrain", "evaluate", "promote"} <= set(runs)
    assert (folder / "artifacts" / "architecture.json").read_text() == architecture


LENIENT = ["monitor.drift_share=1.0", "monitor.non_inferiority_margin=1.0", "monitor.max_prediction_psi=100"]
REPLAY = ["replay.windows=2", "replay.max_requests=60", "monitor.bootstrap_samples=200"]


def test_monitoring_flow_passes_on_lenient_conditions(project):
    folder, params = project
    state = monitoring_flow(params=params, overrides=REPLAY + LENIENT, return_state=True)
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["replay"].state.is_completed() and runs["monitor"].state.is_completed()
    report = json.loads((folder / "metrics" / "monitor.json").read_text())
    assert report["passed"] is True
    assert len(list((folder / "data" / "replay" / "windows").glob("window_*.parquet"))) == 2


def test_monitoring_flow_fails_and_triggers_retrain_when_a_condition_fails(project):
    folder, params = project
    strict = [*REPLAY, "monitor.max_prediction_psi=0.000001", "monitor.trigger_retrain=true"]
    state = monitoring_flow(params=params, overrides=strict, return_state=True)
    assert state.is_failed()
    assert "psi" in state.message.lower(), state.message
    assert json.loads((folder / "metrics" / "monitor.json").read_text())["passed"] is False
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert any(run.name and run.state.is_completed() for run in children), "the retrain flow ran as a subflow"
    with get_client(sync_client=True) as client:
        assert "monitoring-verdicts" in {a.key for a in client.read_artifacts()}


def test_failing_batch_stops_the_flow_before_features_and_leaves_production(project, tmp_path):
    folder, _ = project
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    params = write_params(bad, {"source": "table", "table": EVENTS_TABLE}, seed=5, **SMALL)
    lines = (bad / "events.csv").read_text().splitlines()
    cut = int(len(lines) * 0.8)  # the valid/test window: every event a click (shifted positive rate)
    lines[cut:] = [line[: line.rindex(",")] + ",1" for line in lines[cut:]]
    (bad / "events.csv").write_text("\n".join(lines) + "\n")
    production = _production(bad)
    features_meta = (bad / "data" / "features" / "meta.json").read_bytes()
    model_files = {p: p.stat().st_mtime_ns for p in (bad / "artifacts" / "models").rglob("*.pt")}
    started = datetime.now(UTC)
    state = training_flow(params=str(params), return_state=True)
    assert state.is_failed()
    assert "positive" in state.message.lower() or "expect" in state.message.lower(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["validate"].state.is_failed()
    assert not {"features", "train-control", "search-interaction", "retrain", "promote"} & set(runs)
    assert _production(bad) == production
    assert (bad / "data" / "features" / "meta.json").read_bytes() == features_meta
    assert {p: p.stat().st_mtime_ns for p in model_files} == model_files
    quarantined = [p for p in (bad / "data" / "quarantine").iterdir() if p.stat().st_mtime >= started.timestamp() - 1]
    assert quarantined, "the failing batch is kept in quarantine"


def test_declared_deployments_load_with_their_schedules():
    declared = {d["name"]: d for d in declared_deployments()}
    assert set(declared) == {"weekly-search", "daily-retrain", "hourly-monitoring"}
    runners = {d.name: d for d in to_runner_deployments()}
    assert runners["weekly-search"].flow_name == "training"
    assert runners["daily-retrain"].flow_name == "retrain"
    assert runners["hourly-monitoring"].flow_name == "monitoring"
    assert runners["hourly-monitoring"].schedules[0].schedule.cron.split()[1:] == ["*", "*", "*", "*"]
    weekly = runners["weekly-search"].schedules[0].schedule
    daily = runners["daily-retrain"].schedules[0].schedule
    assert weekly.cron.split()[-1] != "*" and daily.cron.split()[2:] == ["*", "*", "*"]
    start = datetime(2026, 11, 23, tzinfo=UTC)
    weekly_runs = [d for d in _next(weekly, start, 14)]
    daily_runs = [d for d in _next(daily, start, 7)]
    assert len(weekly_runs) == 2 and (weekly_runs[1] - weekly_runs[0]).days == 7
    assert len(daily_runs) == 7


def _next(schedule, start, days):
    """Run times of a cron schedule within ``days`` after ``start``."""
    from datetime import timedelta

    from prefect._vendor.croniter import croniter  # the cron engine Prefect itself schedules with

    it = croniter(schedule.cron, start)
    out = []
    while (when := it.get_next(datetime)) < start + timedelta(days=days):
        out.append(when)
    return out
