"""Benchmark: latency of ``POST /score`` with 100 candidates, with the Feast online lookup and without it.

Starts the scoring service (``aim.serving.app.create_app`` under uvicorn) in a child process on a
free loopback port, once with ``serve.lookup=feast`` and once with ``serve.lookup=memory`` (the
latest attributes held in arrays), sends ``--requests`` sequential requests of ``--candidates``
real item ids for real users of the test split, and reports client-side p50/p90/p99 latency,
requests/s and, from the ``Server-Timing`` header, the share of server time spent in the lookup.
The impressions are logged as in production (to a file of the work folder) and checked at the end.

    python bench/serve_latency.py                      # MovieLens-100k, models set up in bench/work/serve
    python bench/serve_latency.py --in-place           # params.yaml as it is (features and registry exist)
    python bench/serve_latency.py --requests 100 -S serve.threads=2

Without ``--in-place`` the Feast store, the two models (deepfm control, fm challenger, one epoch)
and the registry are created under ``--work`` through params overrides (the CLI stages), so the
project's own ``data/features``, ``artifacts``, ``metrics`` and ``models/registry`` are untouched;
the prepared data in ``data.output_dir`` is read only. JSON to ``bench/results/serve_latency.json``,
a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_P99_MS = 50.0


def _work_overrides(work: Path) -> list[str]:
    return [
        f"features.output_dir={work / 'features'}",
        f"features.store_dir={work / 'feast'}",
        f"artifacts={work / 'artifacts'}",
        f"metrics={work / 'metrics'}",
        f"promote.registry={work / 'registry'}",
        "promote.challenger=fm",
        "train.epochs=1",
        "device=cpu",
    ]


def _flags(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("-S", item)]


def setup(params_file: Path, overrides: list[str]) -> None:
    """Run features, train (control and challenger), evaluate and promote into the overridden paths."""
    from aim.config import load_params
    from aim.registry import ModelRegistry
    from aim.serving.models import arm_names

    params = load_params(params_file, overrides)
    if ModelRegistry(params.path(params.promote.registry)).versions():
        return
    names = arm_names(params)
    stages = [
        ["features"],
        ["train", "--model", names["control"]],
        ["train", "--model", names["treatment"]],
        ["evaluate", "-S", f"evaluate.models=[{names['treatment']}, {names['control']}]"],
        ["promote"],
    ]
    for stage in stages:
        print(f"setup: aim {' '.join(stage)}", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "aim.cli", *stage, "-p", str(params_file), *_flags(overrides)]
        subprocess.run(cmd, check=True, cwd=ROOT)


def child(params_file: Path, overrides: list[str], lookup: str, port: int) -> None:
    """The service process: create_app with ``lookup`` under uvicorn on 127.0.0.1:``port``."""
    import logging

    import torch
    import uvicorn

    from aim.config import load_params
    from aim.serving.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    params = load_params(params_file, overrides)
    torch.set_num_threads(params.serve.threads)
    app = create_app(params, lookup=lookup)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _requests(params, count: int, candidates: int, seed: int) -> list[dict]:
    """Real users of the test split, each with ``candidates`` distinct real item ids."""
    import pandas as pd

    prepared = params.path(params.data.output_dir) / "parquet"
    user_col, item_col = f"raw_{params.serve.user_entity}", f"raw_{params.serve.item_entity}"
    test = pd.read_parquet(prepared / "test.parquet", columns=[user_col])
    items = pd.read_parquet(prepared / "train.parquet", columns=[item_col])[item_col].astype(str).unique()
    rng = np.random.default_rng(seed)
    users = rng.choice(test[user_col].astype(str).to_numpy(), count)
    return [
        {"user_id": str(u), "item_ids": rng.choice(items, candidates, replace=False).tolist(), "request_id": f"b{k}"}
        for k, u in enumerate(users)
    ]


def _timing(header: str) -> dict[str, float]:
    return {name.strip(): float(dur) for name, dur in (part.split(";dur=") for part in header.split(","))}


def run_case(params_file: Path, overrides: list[str], lookup: str, bodies: list[dict], warmup: int, work: Path) -> dict:
    """Start the service with ``lookup``, time the requests, stop it (impressions flushed), check the log."""
    import duckdb
    import httpx

    from aim.serving.server import free_loopback_port

    impressions = work / f"impressions_{lookup}.duckdb"
    work.mkdir(parents=True, exist_ok=True)
    impressions.unlink(missing_ok=True)
    port = free_loopback_port()
    case_overrides = [*overrides, f"serve.impressions={impressions}"]
    cmd = [sys.executable, __file__, "--child", lookup, "--port", str(port), "--params", str(params_file)]
    proc = subprocess.Popen([*cmd, *_flags(case_overrides)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            started = time.monotonic()
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the service exited with code {proc.returncode} before answering /health")
                try:
                    health = client.get("/health")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > 180:
                    raise SystemExit("the service did not become healthy within 180 s")
                time.sleep(0.2)
            startup_s = time.monotonic() - started
            for body in bodies[:warmup]:
                client.post("/score", json={**body, "request_id": "warm-" + body["request_id"]}).raise_for_status()
            latencies, server = [], []
            wall = time.perf_counter()
            for body in bodies:
                t0 = time.perf_counter()
                response = client.post("/score", json=body)
                latencies.append(1000 * (time.perf_counter() - t0))
                response.raise_for_status()
                server.append(_timing(response.headers["server-timing"]))
            wall = time.perf_counter() - wall
            version = client.get("/version").json()
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully: the lifespan flushes the log
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    with duckdb.connect(str(impressions), read_only=True) as con:
        logged = con.execute("SELECT count(*) FROM impressions").fetchone()[0]
    lat = np.array(latencies)
    lookup_ms = np.array([s["lookup"] for s in server])
    model_ms = np.array([s["model"] for s in server])
    total_ms = np.array([s["total"] for s in server])
    return {
        "lookup": lookup,
        "requests": len(bodies),
        "candidates": len(bodies[0]["item_ids"]),
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "mean_ms": float(lat.mean()),
        "requests_per_s": len(bodies) / wall,
        "server_p50_ms": float(np.percentile(total_ms, 50)),
        "server_p99_ms": float(np.percentile(total_ms, 99)),
        "lookup_p50_ms": float(np.percentile(lookup_ms, 50)),
        "lookup_p99_ms": float(np.percentile(lookup_ms, 99)),
        "model_p50_ms": float(np.percentile(model_ms, 50)),
        "lookup_share_of_server_time": float(lookup_ms.sum() / total_ms.sum()),
        "model_share_of_server_time": float(model_ms.sum() / total_ms.sum()),
        "startup_s": startup_s,
        "impressions_logged": int(logged),
        "impressions_expected": (len(bodies) + min(warmup, len(bodies))) * len(bodies[0]["item_ids"]),
        "arms": version["arms"],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| lookup | requests × candidates | p50 ms | p99 ms | max ms | req/s | server p50 ms | lookup p50 ms "
        "| lookup share | model share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lookup']} | {r['requests']} × {r['candidates']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['requests_per_s']:.0f} | {r['server_p50_ms']:.1f} | {r['lookup_p50_ms']:.1f} | "
            f"{100 * r['lookup_share_of_server_time']:.0f}% | {100 * r['model_share_of_server_time']:.0f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], help="params override")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per case (1..5000)")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, default=HERE / "work" / "serve")
    parser.add_argument("--in-place", action="store_true", help="use params as they are: no work folder, no setup")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve_latency.json")
    parser.add_argument("--child", choices=["feast", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.params, args.overrides, args.child, args.port)
        return
    if not 1 <= args.requests <= 5000:
        parser.error("--requests must be between 1 and 5000")
    overrides = list(args.overrides) if args.in_place else [*_work_overrides(args.work.resolve()), *args.overrides]
    if not args.in_place:
        setup(args.params, overrides)

    from aim.config import load_params

    params = load_params(args.params, overrides)
    bodies = _requests(params, args.requests, args.candidates, args.seed)
    load = os.getloadavg()  # other work on the machine shows in the tail latencies
    work = args.work.resolve()
    rows = [run_case(args.params, overrides, lookup, bodies, args.warmup, work) for lookup in ("feast", "memory")]
    feast = rows[0]
    report = {
        "benchmark": "serve_latency",
        "data": params.data.source,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "torch_threads": params.serve.threads,
            "load_average_1_5_15": [round(x, 2) for x in load],
        },
        "setup": "sequential requests over HTTP keep-alive, service in a child process on loopback (uvicorn, 1 worker)",
        "overrides": overrides,
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": feast["p99_ms"] < TARGET_P99_MS,
        "results": {r["lookup"]: r for r in rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(rows))
    print(
        f"\nwith the Feast lookup: p99 {feast['p99_ms']:.1f} ms for {feast['candidates']} candidates "
        f"({'meets' if report['meets_target'] else 'misses'} the {TARGET_P99_MS:.0f} ms target); "
        f"the lookup takes {100 * feast['lookup_share_of_server_time']:.0f}% of server time -> {args.out}"
    )


if __name__ == "__main__":
    main()
