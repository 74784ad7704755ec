"""Stage ``replay``: the held-out window through the running scoring service, as live traffic.

The replayed split (``replay.split``, the test window by default) is cut into ``replay.windows``
equal spans of time. Inside a window, each user's events become one ranking request: the user
and the items they were shown (their events), in time order, at most ``serve.max_candidates``.
At most ``replay.max_requests`` requests are sent, spread evenly over the windows.

The service is started on loopback (``aim serve`` in a subprocess on a free port), the requests
go through HTTP, the service is stopped (which flushes its impression log), and the *logged*
impressions are joined with the true outcomes of their events. Result, per window:
``<replay.output_dir>/windows/window_<k>.parquet`` with request_id, served_at, event_time,
window, raw_user_id, raw_item_id, arm, model_name, model_version, score, position (rank by score in its
request, 0 = top), label and the encoded id of every single-valued model field;
``windows/index.json`` lists the windows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from tqdm.auto import tqdm

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.errors import DataError
from aim.serving.server import free_loopback_port

log = logging.getLogger(__name__)


def replay_events(params: Params) -> pd.DataFrame:
    """The replayed split's events: raw keys, time, label, window and every single field's id."""
    split = params.replay.split
    path = params.path(params.data.output_dir) / "parquet" / f"{split}.parquet"
    if not path.exists():
        raise DataError(f"{path} is missing: run `aim prepare` (or `dvc repro prepare`) first")
    data = PreparedData(params.training_dir())
    entities = data.meta.get("entities", [])
    if len(entities) < 2:
        raise DataError("replay needs a user and an item entity column (data.table.entities); this source has none")
    user, item = entities[0], entities[1]
    table = pq.read_table(path, columns=["split_pos", "timestamp", "label", f"raw_{user}", f"raw_{item}"])
    events = table.to_pandas().rename(columns={f"raw_{user}": "user_id", f"raw_{item}": "item_id"})
    events = events.sort_values("split_pos", kind="stable").reset_index(drop=True)
    arrays = data.split(split)
    if len(arrays) != len(events):
        raise DataError(f"{split}: {len(events)} prepared rows but {len(arrays)} model rows: rerun `aim features`")
    names = [f["name"] for f in data.fields if f["kind"] != "multi_hot"]
    fields = pd.DataFrame(np.asarray(arrays.fields), columns=names)
    events = pd.concat([events.rename(columns={"timestamp": "event_time"}), fields.add_prefix("field:")], axis=1)
    start, end = int(events["event_time"].min()), int(events["event_time"].max())
    edges = np.linspace(start, end + 1, params.replay.windows + 1)
    events["window"] = np.clip(np.searchsorted(edges, events["event_time"], side="right") - 1, 0, len(edges) - 2)
    events.attrs["edges"] = edges.tolist()
    return events


def build_requests(events: pd.DataFrame, params: Params) -> list[dict]:
    """One request per (window, user): the user's items in time order, bounded in number."""
    per_window = max(1, params.replay.max_requests // params.replay.windows)
    ordered = events.sort_values(["window", "event_time", "split_pos"], kind="stable")
    ordered = ordered.drop_duplicates(["window", "user_id", "item_id"])
    groups = ordered.groupby(["window", "user_id"], sort=False)["item_id"].agg(list).reset_index()
    groups = groups.groupby("window", sort=True).head(per_window)
    run = uuid.uuid4().hex[:8]
    return [
        {
            "request_id": f"replay-{run}-{k}",
            "user_id": row.user_id,
            "item_ids": row.item_id[: params.serve.max_candidates],
            "window": int(row.window),
        }
        for k, row in enumerate(groups.itertuples(index=False))
    ]


@contextmanager
def running_service(params: Params, port: int, timeout: float = 120.0):
    """``aim serve`` on 127.0.0.1:``port`` for the duration of the block; stopped with SIGINT."""
    aim = shutil.which("aim") or str(Path(sys.executable).with_name("aim"))
    # The service sees exactly these params (overrides included): a copy beside params.yaml, so
    # that relative paths resolve the same way.
    params_file = params.path(f".replay-params-{port}.yaml")
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    command = [aim, "serve", "-p", str(params_file), "-S", "serve.host=127.0.0.1", "-S", f"serve.port={port}"]
    logfile = params.path(params.replay.output_dir) / "service.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise DataError(f"the scoring service did not start (exit {proc.returncode}); see {logfile}")
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise DataError(f"the scoring service did not answer /health within {timeout:.0f}s; see {logfile}")
                time.sleep(0.5)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # graceful: the service flushes its impression log
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            params_file.unlink(missing_ok=True)


def send_requests(url: str, requests: list[dict]) -> dict[str, dict]:
    """POST every request to ``/score``; returns the responses by request id."""
    answers = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for req in tqdm(requests, desc="replay", unit="request", leave=False):
            body = {k: req[k] for k in ("request_id", "user_id", "item_ids")}
            response = client.post("/score", json=body)
            if response.status_code != 200:
                status, text = response.status_code, response.text
                raise DataError(f"the service refused request {req['request_id']}: {status} {text}")
            answers[req["request_id"]] = response.json()
    return answers


def logged_impressions(params: Params, request_ids: list[str]) -> pd.DataFrame:
    """The impressions the service logged for ``request_ids`` (read after it stopped)."""
    path = params.path(params.serve.impressions)
    if not path.exists():
        raise DataError(f"no impression log at {path}: the service logged nothing")
    with duckdb.connect(str(path), read_only=True) as con:
        con.register("wanted", pd.DataFrame({"request_id": request_ids}))
        return con.sql("SELECT i.* FROM impressions i JOIN wanted USING (request_id)").df()


def label_windows(events: pd.DataFrame, impressions: pd.DataFrame, requests: list[dict]) -> pd.DataFrame:
    """Join logged impressions with the true outcome of their (window, user, item) event."""
    windows = pd.DataFrame(
        {"request_id": [r["request_id"] for r in requests], "window": [r["window"] for r in requests]}
    )
    logged = impressions.merge(windows, on="request_id", how="inner")
    outcomes = events.drop_duplicates(["window", "user_id", "item_id"])
    joined = logged.merge(outcomes, on=["window", "user_id", "item_id"], how="inner")
    if len(joined) != len(logged):
        missing = len(logged) - len(joined)
        raise DataError(f"{missing} logged impressions have no outcome: the impression log and the data disagree")
    fields = {c: c.split(":", 1)[1] for c in joined.columns if c.startswith("field:")}
    columns = [
        "request_id",
        "served_at",
        "event_time",
        "window",
        "user_id",
        "item_id",
        "arm",
        "model_name",
        "model_version",
        "score",
        "position",
        "label",
    ]
    joined["position"] = joined["rank"] - 1  # the window format: rank by score within the request, 0 = top
    # raw keys as raw_<name> (as in the prepared parquet), so fields named like them keep their name
    out = joined[columns + list(fields)].rename(columns={"user_id": "raw_user_id", "item_id": "raw_item_id"})
    out = out.rename(columns=fields)
    out["score"] = out["score"].astype(np.float32)
    out["label"] = out["label"].astype(np.uint8)
    return out.sort_values(["window", "served_at", "request_id", "position"], kind="stable").reset_index(drop=True)


def write_windows(labelled: pd.DataFrame, edges: list[float], folder: Path) -> list[dict]:
    """One parquet per window plus ``index.json``; replaces what an earlier replay wrote."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index = []
    for window, frame in labelled.groupby("window", sort=True):
        name = f"window_{int(window)}.parquet"
        frame.reset_index(drop=True).to_parquet(folder / name, index=False)
        index.append(
            {
                "window": int(window),
                "start": int(edges[window]),
                "end": int(edges[window + 1]),
                "rows": len(frame),
                "file": name,
            }
        )
    (folder / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def run_replay(params: Params) -> dict:
    """Replay the held-out window through a service on loopback; write the labelled windows."""
    started = time.perf_counter()
    events = replay_events(params)
    requests = build_requests(events, params)
    if not requests:
        raise DataError(f"the {params.replay.split} split has no events to replay")
    log.info(
        "replaying %d requests (%d impressions) over %d windows",
        len(requests),
        sum(len(r["item_ids"]) for r in requests),
        params.replay.windows,
    )
    with running_service(params, free_loopback_port()) as url:
        answers = send_requests(url, requests)
    if len(answers) != len(requests):
        raise DataError(f"{len(requests) - len(answers)} replay requests got no answer")
    impressions = logged_impressions(params, [r["request_id"] for r in requests])
    labelled = label_windows(events, impressions, requests)
    folder = params.path(params.replay.output_dir) / "windows"
    index = write_windows(labelled, events.attrs["edges"], folder)
    arms = labelled["arm"].value_counts().to_dict()
    summary = {
        "requests": len(requests),
        "impressions": len(labelled),
        "arms": {k: int(v) for k, v in arms.items()},
        "windows": index,
        "seconds": round(time.perf_counter() - started, 2),
    }
    out = params.path(params.metrics) / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    summary["summary"] = (
        f"replayed {len(requests):,} requests ({len(labelled):,} impressions; arms {summary['arms']}) "
        f"into {len(index)} windows under {folder} in {summary['seconds']:.1f}s"
    )
    return summary
