"""The scoring service against a real small setup: prepared click log, Feast store, two registered models."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aim.cli import app as cli_app
from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.errors import ModelError
from aim.registry import ModelRegistry
from aim.serving.app import create_app
from aim.serving.arms import CONTROL, TREATMENT, assign_arm, bucket
from aim.serving.features import FeatureBuilder, InvalidRequest
from aim.training.metrics import predict
from tests.conftest import EVENTS_TABLE, write_events_csv, write_params

SECTIONS = {
    "model": {"dim": 4, "hidden": [8]},
    "train": {"epochs": 1, "batch_size": 512, "patience": 1},
    "promote": {"challenger": "fm", "control": "deepfm"},
    # gender stays out of the views: an event-level field the request's context carries
    "features": {
        "enabled": True,
        "views": {"user_id": ["user_id", "age"], "item_id": ["item_id", "category", "genres"]},
    },
    "serve": {"treatment_share": 0.5, "max_candidates": 20, "flush_rows": 1000},
}


def _cli(*args: str) -> None:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    root = logging.getLogger()
    for handler in list(root.handlers):  # the command's handler wrote to CliRunner's stream, closed now
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Prepared click log, Feast store, deepfm (control) and fm (challenger) trained, evaluated, promoted."""
    root = tmp_path_factory.mktemp("serving")
    write_events_csv(root / "events.csv", rows=2000)
    params_file = write_params(root, {"source": "table", "table": EVENTS_TABLE}, 5, **SECTIONS)
    for args in (
        ("prepare",),
        ("features",),
        ("train", "--model", "deepfm"),
        ("train", "--model", "fm"),
        ("evaluate", "-S", "evaluate.models=[fm, deepfm]"),
        ("promote",),
    ):
        _cli(*args, "-p", str(params_file))
    return params_file


def _params(project, *overrides: str):
    return load_params(project, list(overrides))


@pytest.fixture(scope="module")
def client(project, tmp_path_factory):
    """One running app (lifespan started) shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("shared-service")
    app = create_app(_params(project, f"serve.impressions={folder / 'impressions.duckdb'}"))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def test_rows(project):
    """Test-split rows with raw keys and the raw gender token (what a request sends)."""
    params = _params(project)
    frame = pd.read_parquet(params.path("data/prepared/parquet/test.parquet"))
    vocab = pd.read_parquet(params.path("data/prepared/vocab.parquet"))
    gender = vocab[vocab["field"] == "gender"].set_index("id")["token"]
    frame["gender_token"] = frame["gender"].map(gender)
    assert frame["gender_token"].notna().all()
    return frame.reset_index(drop=True)


def _score(client, user_id="u1", item_ids=("i1", "i2"), **extra):
    return client.post("/score", json={"user_id": user_id, "item_ids": list(item_ids), **extra})


# -- requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"item_ids": ["i1"]}, 422, "user_id"),
        ({"user_id": "", "item_ids": ["i1"]}, 422, "user_id"),
        ({"user_id": "u1", "item_ids": []}, 422, "item_ids"),
        ({"user_id": "u1"}, 422, "item_ids"),
        ({"user_id": 5, "item_ids": ["i1"]}, 422, "user_id"),
        ({"user_id": "u1", "item_ids": "i1"}, 422, "item_ids"),
        ({"user_id": "u1", "item_ids": [1, 2]}, 422, "item_ids"),
        ({"user_id": "u1", "item_ids": ["i1"], "context": {"gender": 3}}, 422, "context"),
        ({"user_id": "u1", "item_ids": ["i1"], "colour": "red"}, 422, "colour"),
        ({"user_id": "u1", "item_ids": [f"i{k}" for k in range(21)]}, 400, "at most serve.max_candidates = 20"),
        ({"user_id": "u1", "item_ids": ["i1", "i2", "i1"]}, 400, "unique; repeated: ['i1']"),
        ({"user_id": "u1", "item_ids": ["i1"], "context": {"age": "3"}}, 400, "allowed: gender"),
    ],
)
def test_invalid_requests_get_4xx_with_a_message(client, body, status, message):
    response = client.post("/score", json=body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_not_json_is_rejected(client):
    response = client.post("/score", content=b"user_id=u1", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_response_shape_order_and_timing_header(client):
    items = ["i3", "i1", "i7", "i2"]
    response = _score(client, "u4", items, request_id="req-42", context={"gender": "F"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-42"
    assert [s["item_id"] for s in body["scores"]] == items
    assert all(0.0 < s["score"] < 1.0 for s in body["scores"])
    expected = {CONTROL: "deepfm", TREATMENT: "fm"}[body["arm"]]
    assert body["model_name"] == expected and body["model_version"].startswith("v")
    timing = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    assert set(timing) == {"lookup", "model", "total"} and float(timing["total"]) >= float(timing["lookup"])
    assert len(_score(client, "u4", ["i1"]).json()["request_id"]) == 32  # generated uuid4 hex


def test_unknown_users_and_items_score_with_oov_embeddings(client):
    body = _score(client, "never-seen-user", ["i1", "no-such-item", "another-unknown"]).json()
    scores = [s["score"] for s in body["scores"]]
    assert all(np.isfinite(scores)) and all(0.0 < s < 1.0 for s in scores)
    assert scores[1] == pytest.approx(scores[2])  # both items are all-OOV rows
    unknown_context = _score(client, "u1", ["i1"], context={"gender": "not-a-gender"})
    assert unknown_context.status_code == 200


# -- arms -------------------------------------------------------------------------------------


def test_arms_are_stable_and_split_users_as_configured(client, project):
    users = [f"user-{k}" for k in range(10_000)]
    for share in (0.07, 0.5):
        treated = sum(assign_arm(u, "aim-ab-1", share) == TREATMENT for u in users)
        assert abs(treated / len(users) - share) < 0.01
    assert all(0.0 <= bucket("s", u) < 1.0 for u in users[:100])
    assert assign_arm("u1", "salt", 0.0) == CONTROL and assign_arm("u1", "salt", 1.0) == TREATMENT

    # a fresh interpreter with another hash seed assigns the same arms
    sample = users[:200]
    code = (
        "import json, sys; from aim.serving.arms import assign_arm; "
        "print(json.dumps([assign_arm(u, 'aim-ab-1', 0.5) for u in json.loads(sys.stdin.read())]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(sample), capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(done.stdout) == [assign_arm(u, "aim-ab-1", 0.5) for u in sample]

    params = _params(project)
    seen = {}
    for user in ("u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"):
        arms = {_score(client, user, ["i1"]).json()["arm"] for _ in range(2)}
        assert len(arms) == 1
        seen[user] = arms.pop()
        assert seen[user] == assign_arm(user, params.serve.salt, params.serve.treatment_share)
    assert set(seen.values()) == {CONTROL, TREATMENT}  # both arms serve


# -- scores -----------------------------------------------------------------------------------


def test_scores_equal_the_offline_predictions(client, project, test_rows):
    params = _params(project)
    registry = ModelRegistry(params.path(params.promote.registry))
    versions = client.get("/version").json()["arms"]
    test = PreparedData(params.training_dir()).split("test")
    offline = {}
    for arm, described in versions.items():
        model, _ = registry.load(described["version"])
        offline[arm] = predict(model, test, torch.device("cpu"))

    checked = {CONTROL: 0, TREATMENT: 0}
    for user, rows in test_rows.groupby("raw_user_id"):
        rows = rows.drop_duplicates("raw_item_id")
        if len(rows) < 2:
            continue
        body = _score(
            client, user, rows["raw_item_id"].tolist(), context={"gender": rows["gender_token"].iloc[0]}
        ).json()
        served = np.array([s["score"] for s in body["scores"]])
        np.testing.assert_allclose(served, offline[body["arm"]][rows.index.to_numpy()], rtol=1e-5, atol=1e-6)
        checked[body["arm"]] += len(rows)
        if min(checked.values()) >= 10:
            break
    assert min(checked.values()) >= 10, checked


def test_memory_lookup_scores_like_the_feast_lookup(client, project, tmp_path, test_rows):
    params = _params(project, f"serve.impressions={tmp_path / 'memory.duckdb'}")
    items = [*test_rows["raw_item_id"].unique()[:15].tolist(), "unknown-item"]
    with TestClient(create_app(params, lookup="memory")) as memory:
        assert memory.get("/health").json()["lookup"] == "memory"
        for user in ("u1", "u2", "u3", "nobody"):
            a = _score(client, user, items, context={"gender": "M"}).json()["scores"]
            b = _score(memory, user, items, context={"gender": "M"}).json()["scores"]
            assert a == b


# -- impressions ------------------------------------------------------------------------------


def test_impressions_are_logged_with_every_field_and_flushed(project, tmp_path):
    path = tmp_path / "log" / "impressions.duckdb"
    params = _params(project, f"serve.impressions={path}", "serve.flush_rows=10")
    started = datetime.now(UTC) - timedelta(seconds=1)
    sent = []
    with TestClient(create_app(params)) as service:
        for k in range(5):
            items = [f"i{j}" for j in range(k, k + 4)]
            body = _score(service, f"u{k}", items, request_id=f"r{k}").json()
            sent.append(body)
        # 20 rows > flush_rows: the writer thread has written at least the first 12 before shutdown
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with duckdb.connect(str(path)) as con:  # same process as the writer: same configuration
                early = con.execute("SELECT count(*) FROM impressions").fetchone()[0]
            if early >= 12:
                break
            time.sleep(0.05)
        assert early >= 12
        _score(service, "u9", ["i1", "i2"], request_id="last")
        flushed = service.post("/flush").json()  # waits for a write in progress, then writes the rest
        assert flushed["path"] == str(path) and service.get("/health").json()["impressions_buffered"] == 0
        with duckdb.connect(str(path)) as con:
            assert con.execute("SELECT count(*) FROM impressions").fetchone()[0] == 5 * 4 + 2
        _score(service, "u9", ["i3"], request_id="at-shutdown")  # left for the shutdown flush
    with duckdb.connect(str(path), read_only=True) as con:
        frame = con.execute("SELECT * FROM impressions ORDER BY request_id, position").df()
    assert len(frame) == 5 * 4 + 2 + 1
    assert list(frame.columns) == [
        "request_id",
        "served_at",
        "user_id",
        "item_id",
        "arm",
        "model_name",
        "model_version",
        "score",
        "position",
        "rank",
    ]
    assert frame.notna().all().all()
    assert set(frame["request_id"]) == {"r0", "r1", "r2", "r3", "r4", "last", "at-shutdown"}
    served = pd.to_datetime(frame["served_at"], utc=True)
    assert (served >= started).all() and (served <= datetime.now(UTC)).all()
    for body in sent:
        rows = frame[frame["request_id"] == body["request_id"]]
        assert rows["item_id"].tolist() == [s["item_id"] for s in body["scores"]]
        assert rows["score"].tolist() == pytest.approx([s["score"] for s in body["scores"]])
        assert rows["position"].tolist() == [0, 1, 2, 3]
        assert sorted(rows["rank"]) == [1, 2, 3, 4] and rows.sort_values("rank")["score"].is_monotonic_decreasing
        assert set(rows["arm"]) == {body["arm"]} and set(rows["model_version"]) == {body["model_version"]}
        assert set(rows["model_name"]) == {body["model_name"]} and set(rows["user_id"]) == {rows["user_id"].iloc[0]}


# -- health, version, refusing to start -------------------------------------------------------


def test_health_and_version(client, project):
    params = _params(project)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["online_store"] is True
    assert set(health.json()["models"]) == {CONTROL, TREATMENT}
    version = client.get("/version").json()
    registry = ModelRegistry(params.path(params.promote.registry))
    data_version = PreparedData(params.training_dir()).meta["data_version"]
    assert version["package"] == "0.1.0" and version["treatment_share"] == 0.5
    for arm, name in ((CONTROL, "deepfm"), (TREATMENT, "fm")):
        described = version["arms"][arm]
        assert described["name"] == name and described["data_version"] == data_version
        assert registry.info(described["version"])["name"] == name


def test_an_unreachable_online_store_is_reported_not_hidden(project, tmp_path):
    params = _params(project)
    store = tmp_path / "feast"
    shutil.copytree(params.path(params.features.store_dir), store)
    copy = _params(project, f"features.store_dir={store}", f"serve.impressions={tmp_path / 'i.duckdb'}")
    with TestClient(create_app(copy)) as service:
        (store / "online.db").unlink()
        (store / "online.db").mkdir()  # sqlite cannot open a folder
        health = service.get("/health")
        assert health.status_code == 503 and health.json()["online_store"] is False
        assert health.json()["status"] == "unavailable" and health.json()["error"]
        scored = _score(service, "u1", ["i1"])
        assert scored.status_code == 503 and "online feature lookup failed" in scored.json()["detail"]


def test_refuses_to_start_without_usable_models(project, tmp_path):
    impressions = f"serve.impressions={tmp_path / 'i.duckdb'}"
    with pytest.raises(ModelError, match=r"no model is registered in .*aim promote"):
        create_app(_params(project, f"promote.registry={tmp_path / 'empty'}", impressions))
    with pytest.raises(ModelError, match=r"no version of 'lr' \(the treatment arm"):
        create_app(_params(project, "promote.challenger=lr", impressions))

    params = _params(project)
    source = ModelRegistry(params.path(params.promote.registry))
    fm = [v for v in source.versions() if source.info(v)["name"] == "fm"][-1]

    corrupt = tmp_path / "corrupt"
    shutil.copytree(source.root, corrupt)
    weights = corrupt / fm / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-20] + b"x" * 20)
    with pytest.raises(ModelError, match=r"model\.pt is corrupt.*register the model again"):
        create_app(_params(project, f"promote.registry={corrupt}", impressions))

    other = tmp_path / "other-vocab"
    shutil.copytree(source.root, other)
    config_path = other / fm / "config.json"
    config = json.loads(config_path.read_text())
    config["fields"][0][1] += 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"does not match the fields/vocabularies.*aim train --model fm"):
        create_app(_params(project, f"promote.registry={other}", impressions))


def test_cli_serve_reports_a_missing_registry(project, tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "-p", str(project), "-S", f"promote.registry={tmp_path / 'none'}"])
    assert result.exit_code == 2 and "aim promote" in result.output


def test_builder_broadcasts_user_and_context_fields_in_model_order():
    fields = [
        {"name": "user_id", "kind": "categorical"},
        {"name": "device", "kind": "categorical"},
        {"name": "item_id", "kind": "categorical"},
        {"name": "likes", "kind": "multi_hot", "max_len": 3},
        {"name": "tags", "kind": "multi_hot", "max_len": 2},
        {"name": "topics", "kind": "multi_hot", "max_len": 3},
    ]
    views = {"user_id": ["user_id", "likes"], "item_id": ["item_id", "tags"]}
    vocab = {"device": {"ios": 2}, "topics": {"a": 1, "b": 4}}

    class Fake:
        calls: list = []

        def attributes(self, entity, keys):
            self.calls.append((entity, list(keys)))
            n = len(keys)
            if entity == "user_id":
                return {"user_id": np.array([7], np.int32), "likes": (np.array([[5, 6, 0]]), np.array([[1, 1, 0]]))}
            ids = np.arange(1, n + 1, dtype=np.int32)
            return {"item_id": ids, "tags": (np.stack([ids, ids], 1), np.ones((n, 2), np.uint8))}

        def ping(self):
            pass

    source = Fake()
    builder = FeatureBuilder(fields, views, "user_id", "item_id", vocab, {"topics": ";"})
    assert builder.context_fields == ["device", "topics"]
    inputs, _ = builder.build(source, "u", ["a", "b", "c"], {"device": "ios", "topics": "b;zzz;a;b"})
    assert source.calls == [("user_id", ["u"]), ("item_id", ["a", "b", "c"])]  # one call per entity
    assert inputs.ids.dtype == torch.int64 and inputs.ids.tolist() == [[7, 2, 1], [7, 2, 2], [7, 2, 3]]
    (likes, likes_mask), (tags, _), (topics, topics_mask) = inputs.multi_hot
    assert likes.tolist() == [[5, 6, 0]] * 3 and likes_mask.tolist() == [[1, 1, 0]] * 3
    assert tags[:, 0].tolist() == [1, 2, 3]
    assert topics.tolist() == [[4, 0, 1]] * 3 and topics_mask.tolist() == [[1, 1, 1]] * 3  # unknown -> 0, truncated
    empty, _ = builder.build(source, "u", ["a"], None)  # missing values: the null token (id 0 when unseen)
    assert empty.ids.tolist() == [[7, 0, 1]] and empty.multi_hot[2][0].tolist() == [[0, 0, 0]]
    assert empty.multi_hot[2][1].tolist() == [[1, 0, 0]]
    vocab["device"]["__null__"] = 9
    assert builder.build(source, "u", ["a"], {})[0].ids.tolist() == [[7, 9, 1]]
    with pytest.raises(InvalidRequest, match="allowed: device, topics"):
        builder.build(source, "u", ["a"], {"user_id": "x"})
