"""Evidently monitoring end to end on a small real data set with synthesised replay windows.

The windows follow the replay format of :mod:`aim.monitoring.windows`; their rows are drawn
from the prepared valid/test splits (field ids from the split arrays, labels from the data,
raw ids from the prepared parquet, written as ``raw_user_id`` / ``raw_item_id`` because
``user_id`` and ``item_id`` are model fields here), arms are assigned by the parity of the encoded user id,
and scores come from a seeded noisy model of the labels (the challenger a little sharper).
Window kinds: ``clean``; ``drift`` (80% of the item ids replaced by one id); ``broken`` (the
challenger's scores inverted, so its AUC falls far below the control's).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aim.cli import app
from aim.config import Params, load_params
from aim.data.arrays import PreparedData
from aim.errors import DataError
from aim.monitoring.bootstrap import _ArmResampler, bootstrap_ab, interval
from aim.monitoring.frames import single_fields
from aim.monitoring.windows import INDEX_FILE, USER, WINDOWS_DIR, read_index, read_window
from aim.pipeline.monitor import run_monitor
from tests.conftest import EVENTS_TABLE, write_events_csv, write_params

MONITOR = {"drift_share": 0.2, "non_inferiority_margin": 0.02, "max_prediction_psi": 0.2, "top_k": 3}
ROWS_PER_WINDOW = 3000
DRIFTED_FIELD = "item_id"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def write_windows(params: Params, kinds: list[str], seed: int, rows: int = ROWS_PER_WINDOW) -> Path:
    """Replay windows of the given kinds under ``replay.output_dir/windows``; returns that folder."""
    prepared = PreparedData(params.training_dir())
    fields = single_fields(prepared)
    splits = [prepared.split(name) for name in ("valid", "test")]
    ids = np.concatenate([np.asarray(s.fields) for s in splits])
    labels = np.concatenate([np.asarray(s.labels) for s in splits])
    raw = pd.concat([pd.read_parquet(prepared.folder / "parquet" / f"{name}.parquet") for name in ("valid", "test")])
    users, items = raw["raw_user_id"].to_numpy(), raw["raw_item_id"].to_numpy()
    rng = np.random.default_rng(seed)
    folder = params.path(params.replay.output_dir) / WINDOWS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for k, kind in enumerate(kinds):
        pick = rng.choice(len(labels), rows, replace=True)
        f, y = ids[pick].copy(), labels[pick].astype(np.int64)
        if kind == "drift":
            f[rng.random(rows) < 0.8, fields.index(DRIFTED_FIELD)] = 1
        arm = np.where(f[:, fields.index("user_id")] % 2 == 1, "treatment", "control")
        sharpness = np.where(arm == "treatment", 1.1, 0.8)
        score = 1 / (1 + np.exp(-(sharpness * (2 * y - 1) + rng.normal(0, 1, rows))))
        if kind == "broken":
            score = np.where(arm == "treatment", 1 - score, score)
        start = 1_700_000_000 + 3600 * k
        event_time = np.sort(rng.integers(start, start + 3600, rows))
        frame = pd.DataFrame(
            {
                "raw_user_id": users[pick].astype(str),
                "raw_item_id": items[pick].astype(str),
                "arm": arm,
                "model_name": np.where(arm == "treatment", "aim", "deepfm"),
                "model_version": "1",
                "score": score.astype(np.float32),
                "label": y.astype(np.uint8),
                "event_time": event_time.astype(np.int64),
                "window": k,
            }
        )
        frame["served_at"] = pd.to_datetime(frame["event_time"], unit="s", utc=True)
        nth = frame.groupby("raw_user_id").cumcount() // 10  # requests of up to 10 items per user
        frame["request_id"] = [f"w{k}-{u}-{n}" for u, n in zip(frame["raw_user_id"], nth, strict=True)]
        frame["position"] = (frame.groupby("request_id")["score"].rank(ascending=False, method="first") - 1).astype(int)
        for j, name in enumerate(fields):
            frame[name] = f[:, j].astype(np.int32)
        path = folder / f"window_{k}.parquet"
        frame.to_parquet(path, index=False)
        index.append({"window": k, "start": start, "end": start + 3600, "rows": rows, "file": path.name})
    (folder / INDEX_FILE).write_text(json.dumps(index))
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A prepared events data set (20k rows, 60 users, 40 items) and its params.yaml."""
    folder = tmp_path_factory.mktemp("monitoring")
    write_events_csv(folder / "events.csv", rows=20_000, seed=5, users=60, items=40)
    path = write_params(folder, {"source": "table", "table": EVENTS_TABLE}, seed=11, monitor=MONITOR)
    result = _cli("prepare", "-p", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def monitored(project):
    """``aim monitor`` over three windows: clean, drifted, broken challenger."""
    write_windows(load_params(project), ["clean", "drift", "broken"], seed=1)
    result = _cli("monitor", "-p", str(project))
    params = load_params(project)
    report = json.loads((params.path(params.metrics) / "monitor.json").read_text())
    return {"cli": result, "params": params, "json": report}


def _window(monitored, k: int) -> dict:
    return monitored["json"]["windows"][k]


def test_cli_exits_zero_and_names_the_failed_conditions(monitored):
    result, report = monitored["cli"], monitored["json"]
    assert result.exit_code == 0, result.output
    assert "monitored 3 window(s): FAILED" in result.output
    assert report["passed"] is False
    assert report["failed"] == ["drift", "auc_non_inferiority"]
    assert [w["passed"] for w in report["windows"]] == [True, False, False]


def test_clean_window_passes_every_condition(monitored):
    window = _window(monitored, 0)
    assert all(c["passed"] and c["status"] == "SUCCESS" for c in window["conditions"].values()), window["conditions"]
    assert window["drift"]["drifted_columns"] == [] and window["drift"]["share"] == 0
    for arm in ("control", "treatment"):
        assert window["arms"][arm]["auc"] > 0.75
    lower, upper = window["ab"]["delta_auc_ci"]
    assert -MONITOR["non_inferiority_margin"] < lower < window["ab"]["delta_auc"] < upper
    assert window["ab"]["psi"] < MONITOR["max_prediction_psi"]


def test_injected_drift_fails_only_the_drift_condition(monitored):
    window = _window(monitored, 1)
    conditions = window["conditions"]
    assert conditions["drift"]["passed"] is False and conditions["drift"]["status"] == "FAIL"
    assert window["drift"]["drifted_columns"] == [DRIFTED_FIELD]
    assert conditions["drift"]["value"] == pytest.approx(1 / window["drift"]["columns"])
    assert conditions["auc_non_inferiority"]["passed"] and conditions["prediction_psi"]["passed"]


def test_broken_challenger_fails_non_inferiority(monitored):
    window = _window(monitored, 2)
    conditions = window["conditions"]
    assert conditions["auc_non_inferiority"]["passed"] is False
    assert window["arms"]["treatment"]["auc"] < 0.3 < 0.75 < window["arms"]["control"]["auc"]
    assert window["ab"]["delta_auc_ci"][1] < 0
    assert conditions["drift"]["passed"] and conditions["prediction_psi"]["passed"]


def test_monitor_json_figures_match_the_window_logs(monitored):
    params, report = monitored["params"], monitored["json"]
    assert report["latest"] == report["windows"][-1]
    assert report["conditions"] == ["drift", "auc_non_inferiority", "prediction_psi"]
    assert report["thresholds"]["drift_share"] == MONITOR["drift_share"]
    k = MONITOR["top_k"]
    for record in report["windows"]:
        log = pd.read_parquet(
            params.path(params.replay.output_dir) / WINDOWS_DIR / f"window_{record['window']}.parquet"
        )
        assert record["rows"] == len(log) == sum(a["rows"] for a in record["arms"].values())
        for arm, figures in record["arms"].items():
            rows = log[log["arm"] == arm]
            assert figures["ctr"] == pytest.approx(rows["label"].mean())
            assert figures["ctr_at_k"] == pytest.approx(rows.loc[rows["position"] < k, "label"].mean())
            assert figures["requests"] == rows["request_id"].nunique()
        ab = record["ab"]
        assert ab["delta_auc"] == pytest.approx(record["arms"]["treatment"]["auc"] - record["arms"]["control"]["auc"])
        # the bound Evidently tested is the numpy bound of the same replicates
        assert record["conditions"]["auc_non_inferiority"]["value"] == pytest.approx(ab["delta_auc_ci"][0], abs=1e-12)
        assert record["conditions"]["prediction_psi"]["value"] == ab["psi"]
        assert ab["valid_samples"] == params.monitor.bootstrap_samples
        assert record["report"] == f"window_{record['window']}/report.html"


def test_one_html_report_per_window(monitored):
    params = monitored["params"]
    reports = params.path(params.monitor.reports_dir)
    for k in range(3):
        html = (reports / f"window_{k}" / "report.html").read_text()
        assert len(html) > 100_000
        for text in ("Share of Drifted Columns", "delta_auc", "RocAuc", "psi"):
            assert text in html, text


def _series(workspace: Path, project_id, panel) -> dict[str, list]:
    """The points a dashboard panel plots, from Evidently's own workspace storage."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    storage = InMemoryDataStorage(str(workspace))
    filters = [
        SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels)
        for v in panel.values
    ]
    response = asyncio.run(storage.get_data_series(project_id, filters, None, None))
    return {str(s.params.get("classification_name") or s.params.get("value_type")): s.values for s in response.series}


def test_workspace_has_one_project_one_run_per_window_and_the_dashboard(monitored):
    from evidently.ui.workspace import Workspace

    params, report = monitored["params"], monitored["json"]
    path = params.path(params.monitor.workspace)
    workspace = Workspace(str(path))
    (project,) = workspace.search_project(params.monitor.project)
    runs = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    assert sorted(r.metadata["window"] for r in runs) == ["0", "1", "2"]
    assert {r.metadata["window"]: "passed" in r.tags for r in runs} == {"0": True, "1": False, "2": False}
    dashboard = workspace.get_dashboard(project.id)
    panels = {p.title: p for p in dashboard.panels}
    assert {"AUC by arm over time", "Drifted columns over time"} <= set(panels)
    auc = _series(path, project.id, panels["AUC by arm over time"])
    for arm in ("control", "treatment"):
        expected = [w["arms"][arm]["auc"] for w in report["windows"]]
        assert auc[arm] == pytest.approx(expected, abs=1e-9)  # Evidently's AUC = scikit-learn's
    drifted = _series(path, project.id, panels["Drifted columns over time"])
    assert drifted["count"] == [0, 1, 0]


@pytest.fixture(scope="module")
def clean_runs(project, tmp_path_factory):
    """Two clean windows monitored twice into their own workspace (results of both runs)."""
    out = tmp_path_factory.mktemp("clean")
    overrides = [
        f"replay.output_dir={out / 'replay'}",
        f"monitor.workspace={out / 'workspace'}",
        f"monitor.reports_dir={out / 'reports'}",
        f"metrics={out / 'metrics'}",
    ]
    params = load_params(project, overrides)
    write_windows(params, ["clean", "clean"], seed=2)
    return params, run_monitor(params), run_monitor(params)


def test_all_clean_windows_pass(clean_runs):
    _, first, second = clean_runs
    assert first["passed"] is True and first["failed"] == []
    assert "all conditions passed" in first["summary"]
    assert len(first["windows"]) == 2
    assert first["windows"] == second["windows"]  # seeded: the same figures again


def test_rerun_does_not_duplicate_the_project_runs_or_panels(clean_runs):
    from evidently.ui.workspace import Workspace

    params, _, second = clean_runs
    workspace = Workspace(second["workspace"])
    assert len(workspace.list_projects()) == 1
    (project,) = workspace.search_project(params.monitor.project)
    assert len(workspace.list_runs(project.id)) == 2
    dashboard = workspace.get_dashboard(project.id)
    assert len(dashboard.tabs) == 1
    assert len(dashboard.panels) == len(dashboard.tabs[0].panels) == len({p.title for p in dashboard.panels})


def test_missing_windows_exit_2_with_a_clear_message(project, tmp_path):
    result = _cli("monitor", "-p", str(project), "-S", f"replay.output_dir={tmp_path / 'nothing'}")
    assert result.exit_code == 2
    assert "run `aim replay` first" in result.output


def test_window_without_a_column_is_a_data_error(project, tmp_path):
    params = load_params(project, [f"replay.output_dir={tmp_path}"])
    folder = write_windows(params, ["clean"], seed=3, rows=200)
    path = folder / "window_0.parquet"
    log = pd.read_parquet(path)
    log.drop(columns=["score"]).to_parquet(path)
    with pytest.raises(DataError, match="lacks column.s. score"):
        run_monitor(params)
    # the raw user id where the encoded user field belongs: named as such
    log.assign(user_id=log["raw_user_id"]).drop(columns=["raw_user_id"]).to_parquet(path)
    with pytest.raises(DataError, match="user_id must hold the encoded int32 ids"):
        run_monitor(params)


def test_both_ways_of_naming_colliding_fields_read_the_same(project, tmp_path):
    params = load_params(project, [f"replay.output_dir={tmp_path}"])
    folder = write_windows(params, ["clean"], seed=3, rows=200)
    info = read_index(params.path(params.replay.output_dir))[0]
    fields = single_fields(PreparedData(params.training_dir()))
    expected = read_window(info, fields)
    log = pd.read_parquet(folder / "window_0.parquet")
    renamed = {
        "user_id": "field:user_id",
        "item_id": "field:item_id",
        "raw_user_id": "user_id",
        "raw_item_id": "item_id",
    }
    log.rename(columns=renamed).to_parquet(folder / "window_0.parquet")
    again = read_window(info, fields)
    pd.testing.assert_frame_equal(again, expected)
    assert list(again.columns[-len(fields) :]) == fields and again[USER].str.startswith("u").all()


def _arm(rng, n: int, sharpness: float, users: int) -> pd.DataFrame:
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(sharpness * (2 * y - 1) + rng.normal(0, 1, n))))
    return pd.DataFrame({USER: rng.integers(0, users, n).astype(str), "label": y, "score": score})


def test_weighted_resample_metrics_match_scikit_learn():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    arm = _arm(rng, 800, 0.8, 90)
    arm["score"] = arm["score"].round(2)  # ties
    resampler = _ArmResampler(arm)
    weights = resampler.weights(rng, 3)
    auc, logloss = resampler.metrics(weights)
    for w, a, ll in zip(weights, auc, logloss, strict=True):
        assert a == pytest.approx(roc_auc_score(arm["label"], arm["score"], sample_weight=w))
        assert ll == pytest.approx(log_loss(arm["label"], arm["score"], sample_weight=w))


def test_bootstrap_is_seeded_chunk_free_and_separates_better_from_worse():
    rng = np.random.default_rng(1)
    control, better = _arm(rng, 1500, 0.5, 200), _arm(rng, 1500, 1.5, 200)
    first = bootstrap_ab(control, better, 300, [4, 0])
    again = bootstrap_ab(control, better, 300, [4, 0], chunk_elements=5000)
    assert np.array_equal(first["delta_auc"], again["delta_auc"])
    assert not np.array_equal(first["delta_auc"], bootstrap_ab(control, better, 300, [4, 1])["delta_auc"])
    assert interval(0.0, first["delta_auc"], 0.95).ci[0] > 0.1
    assert interval(0.0, first["delta_logloss"], 0.95).ci[1] < 0
    swapped = bootstrap_ab(better, control, 300, [4, 0])
    assert interval(0.0, swapped["delta_auc"], 0.95).ci[1] < -0.1
