"""Benchmark harness: training and inference speed of DeepFM and the AIM stages, side by side with
FuxiCTR 2.3.10's DeepFM, on Criteo-shaped data (39 fields, Zipf values) from the generator.

    python bench/perf.py                       # 1M rows: DeepFM, AIM stages, FuxiCTR
    python bench/perf.py --rows 10000000 --models deepfm --no-fuxictr   # the scale check
    python bench/perf.py --compile             # the AIM stages with torch.compile

Configuration (both libraries): embedding dim 10, MLP 400-400-400 with batch norm, Adam lr 1e-3,
training batch 4096, one epoch, inference batch 8192, torch threads = the machine's cores, seed
2026. AIM: the params.yaml defaults of variant ``aim`` (4 interaction functions, orders <= 3,
GRDA), dim 10, the same MLP for the retrained model; one epoch per search order.

Timed regions (ours; FuxiCTR's are stated in bench/fuxictr_runner.py):
- train: one epoch of ``aim.training.loop.train`` over the train split: drawing each shuffled
  batch from the memory-mapped arrays + forward + loss + backward + optimizer step(s) (Adam, and
  GRDA for the gates in the search stages). ``data`` = waiting for the next batch (slicing and
  host-to-device copy), ``compute`` = the rest. Not timed: the end-of-epoch validation.
- inference: the valid split in batches of 8192 in eval mode under no_grad: batch slicing +
  forward + sigmoid; same data / compute split.
- inference duel: the trained DeepFM and retrained AIM (saved by their children) infer the valid
  split in one more child process, batch by batch: each batch is sliced once and fed to both, back
  to back (who goes first alternates); timed per model: forward + sigmoid. 9 passes after a warm-up
  pass; the retrained-vs-DeepFM ratio is the ratio of their median samples/s (the per-child
  figures, slicing included, also stand in the table).
Each model runs in its own child process, so peak RSS (``ru_maxrss``) is per model (the AIM
stages share one process, as they hand the architecture on). Data generation and ``aim prepare``
are not timed (bench/prepare_throughput.py measures them). Results: bench/results/perf_<rows>.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MLP = (400, 400, 400)
DUEL_ROUNDS = 9  # inference passes per model in the same-process comparison
DIM, BATCH, INFER_BATCH, LR, SEED = 10, 4096, 8192, 1e-3, 2026


def prepared_dir(rows: int, workdir: Path) -> Path:
    """Generate (once) and prepare (once) a Criteo-shaped data set of ``rows`` rows."""
    from aim.config import SyntheticCriteoConfig, load_params
    from aim.data.synthetic import ensure_criteo_like
    from aim.pipeline.prepare import run_prepare

    folder = workdir / f"criteo_{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    tsv = folder / "criteo.tsv"
    ensure_criteo_like(tsv, SyntheticCriteoConfig(rows=rows, max_vocab=1_000_000, path=tsv), seed=SEED)
    prepared = folder / "prepared"
    meta = prepared / "meta.json"
    if not meta.exists() or sum(json.loads(meta.read_text())["splits"].values()) != rows:
        params = {
            "seed": SEED,
            "data": {
                "source": "criteo",
                "criteo": {"path": str(tsv)},
                "output_dir": "prepared",
                "warehouse": "warehouse.duckdb",
            },
            "features": {"enabled": False},
        }
        (folder / "params.yaml").write_text(json.dumps(params))
        run_prepare(load_params(folder / "params.yaml"))
    return prepared


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


@torch.no_grad()
def time_inference(model: torch.nn.Module, split, device: torch.device) -> dict:
    """Predict ``split`` in batches of 8192: seconds, rows/s, data vs compute."""
    from aim.training.batches import TimedBatches, iterate

    model.eval()
    batches = TimedBatches(iterate(split, INFER_BATCH, device))
    start = time.perf_counter()
    for batch in batches:
        torch.sigmoid(model(batch.ids, batch.multi_hot)).cpu()
    seconds = time.perf_counter() - start
    return _region(len(split), seconds, batches.waited)


def _region(rows: int, seconds: float, data: float) -> dict:
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "samples_per_s": round(rows / seconds),
        "data_s": round(data, 2),
        "compute_s": round(seconds - data, 2),
    }


def _epoch(history: dict, rows: int) -> dict:
    """The timed training region of one epoch from the loop's history entry."""
    region = _region(rows, history["train_seconds"], history["data_seconds"])
    return {**region, "valid_auc": round(history["auc"], 4)}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _settings(compile_: bool):
    from aim.training.loop import TrainSettings

    return TrainSettings(epochs=1, batch_size=BATCH, lr=LR, patience=1, seed=SEED, compile=compile_)


def child_deepfm(prepared: Path, device: torch.device, compile_: bool) -> dict:
    """One DeepFM epoch and one inference pass."""
    from aim.data.arrays import PreparedData
    from aim.models.factorization import DeepFM
    from aim.training.checkpoint import save_checkpoint
    from aim.training.loop import train

    data = PreparedData(prepared)
    torch.manual_seed(SEED)
    kwargs = {"vocab_sizes": data.vocab_sizes, "dim": DIM, "n_multi_hot": data.n_multi_hot, "hidden": MLP}
    model = DeepFM(**kwargs)
    result = train(model, data, _settings(compile_), device)
    save_checkpoint(model, {"model": "deepfm", "kwargs": kwargs}, _model_dir(prepared, "deepfm"))
    rows = len(data.split("train"))
    return {
        "deepfm": {
            "train": _epoch(result.history[0], rows),
            "inference": time_inference(model, data.split("valid"), device),
            "parameters": _params(model),
            "peak_rss_gb": round(_peak_rss_gb(), 2),
        }
    }


def child_aim(prepared: Path, device: torch.device, compile_: bool, grda_c: float | None = None) -> dict:
    """search-interaction (one epoch per order, orders <= 3), search-embed and retrain, one epoch each.

    ``grda_c`` replaces params.yaml's interaction GRDA threshold scale (to keep some order-2 gates
    open in a one-epoch run, so that an order-3 epoch runs and is timed)."""
    from aim.config import Params
    from aim.data.arrays import PreparedData
    from aim.search.stages import (
        EmbedSearchSettings,
        GRDASettings,
        InteractionSearchSettings,
        RetrainSettings,
        retrain,
        search_embed,
        search_interaction,
    )
    from aim.search.variants import VARIANTS
    from aim.training.checkpoint import save_checkpoint

    data, defaults = PreparedData(prepared), Params()
    rows = len(data.split("train"))
    grda = defaults.search.interaction_grda
    settings = InteractionSearchSettings(
        dim=DIM,
        functions=VARIANTS["aim"].functions,
        max_order=3,
        alpha_init=defaults.search.alpha_init,
        grda=GRDASettings(lr=grda.lr, c=grda.c if grda_c is None else grda_c, mu=grda.mu),
        train=_settings(compile_),
    )
    arch, results = search_interaction(data, settings, device)
    orders = {f"order_{k + 2}": _epoch(r.history[0], rows) for k, r in enumerate(results)}
    search_seconds = sum(o["seconds"] for o in orders.values())
    out = {
        "aim_search_interaction": {
            "train": {**_region(rows, search_seconds, sum(o["data_s"] for o in orders.values())), **orders},
            "kept": {str(p): sum(i.order == p for i in arch.interactions) for p in arch.orders},
            "grda_c": settings.grda.c,
            "peak_rss_gb": round(_peak_rss_gb(), 2),
        }
    }
    embed = defaults.search.embed_grda
    eds = EmbedSearchSettings(grda=GRDASettings(lr=embed.lr, c=embed.c, mu=embed.mu), train=_settings(compile_))
    arch, result = search_embed(data, arch, eds, device)
    out["aim_search_embed"] = {
        "train": _epoch(result.history[0], rows),
        "widths": arch.widths,
        "peak_rss_gb": round(_peak_rss_gb(), 2),
    }
    model, result, config = retrain(data, arch, RetrainSettings(hidden=MLP, train=_settings(compile_)), device)
    save_checkpoint(model, config, _model_dir(prepared, "aim_retrained"))
    out["aim_retrained"] = {
        "train": _epoch(result.history[0], rows),
        "inference": time_inference(model, data.split("valid"), device),
        "parameters": _params(model),
        "peak_rss_gb": round(_peak_rss_gb(), 2),
    }
    return out


def _model_dir(prepared: Path, name: str) -> Path:
    return prepared.parent / "models" / name


def child_duel(prepared: Path, device: torch.device, compile_: bool) -> dict:
    """The trained DeepFM and retrained AIM, inferring in one process batch by batch: each batch of
    the valid split is sliced once and fed to both models back to back (who goes first alternates),
    ``DUEL_ROUNDS`` passes after one untimed warm-up pass. Both see the same machine state at the
    same moment, so the ratio no longer depends on what the VM did between two runs or passes."""
    from aim.data.arrays import PreparedData
    from aim.memory import keep_freed_memory
    from aim.training.batches import iterate
    from aim.training.checkpoint import load_checkpoint

    keep_freed_memory()  # as train() does in the children that trained them
    split = PreparedData(prepared).split("valid")
    models = {name: load_checkpoint(_model_dir(prepared, name), device)[0] for name in ("deepfm", "aim_retrained")}
    for model in models.values():
        model.eval()
    names = list(models)
    rounds: dict[str, list[float]] = {name: [] for name in names}
    with torch.no_grad():
        for turn in range(DUEL_ROUNDS + 1):
            seconds = dict.fromkeys(names, 0.0)
            for index, batch in enumerate(iterate(split, INFER_BATCH, device)):
                for name in names if (turn + index) % 2 == 0 else names[::-1]:
                    start = time.perf_counter()
                    torch.sigmoid(models[name](batch.ids, batch.multi_hot)).cpu()
                    seconds[name] += time.perf_counter() - start
            if turn:  # the first pass warms caches and pages: not counted
                for name in names:
                    rounds[name].append(round(len(split) / seconds[name]))
    median = {name: sorted(values)[len(values) // 2] for name, values in rounds.items()}
    per_pass = [a / d for a, d in zip(rounds["aim_retrained"], rounds["deepfm"], strict=True)]
    return {
        "rounds": rounds,
        "median_samples_per_s": median,
        "retrained_vs_deepfm": round(median["aim_retrained"] / median["deepfm"], 2),
        "retrained_vs_deepfm_per_pass_min_max": [round(min(per_pass), 2), round(max(per_pass), 2)],
    }


def run_child(kind: str, prepared: Path, compile_: bool, grda_c: float | None = None) -> dict:
    """Run one child in a fresh process (its own peak RSS) and return its JSON."""
    command = [sys.executable, __file__, "--child", kind, "--prepared", str(prepared)]
    command += ["--compile"] if compile_ else []
    command += ["--grda-c", str(grda_c)] if grda_c is not None else []
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(report: dict) -> str:
    """The results as a markdown table plus the acceptance ratios."""
    lines = [
        f"rows: {report['rows']:,} (train {report['train_rows']:,}), {report['machine']['cpus']} CPU threads, "
        f"device {report['device']}, torch {report['torch']}, compile {report['compile']}, "
        f"load average {report['loadavg_1m']['before']} -> {report['loadavg_1m']['after']}",
        "",
        "| model | train samples/s | epoch s (data / compute) | inference samples/s | params | peak RSS GB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in report["models"].items():
        train, infer = entry.get("train", {}), entry.get("inference", {})
        lines.append(
            f"| {name} | {train.get('samples_per_s', '')} | {train.get('seconds', '')} "
            f"({train.get('data_s', '')} / {train.get('compute_s', '')}) | {infer.get('samples_per_s', '')} | "
            f"{entry.get('parameters', '')} | {entry.get('peak_rss_gb', '')} |"
        )
    lines.append("")
    duel = report.get("inference_duel")
    if duel:
        medians = ", ".join(f"{name} {value}" for name, value in duel["median_samples_per_s"].items())
        lines.append(
            f"- inference duel, one process, batch by batch, median samples/s of {DUEL_ROUNDS} passes each: "
            f"{medians} (per-pass ratio {duel['retrained_vs_deepfm_per_pass_min_max']})"
        )
    lines += [f"- {key}: {value}" for key, value in report["ratios"].items()]
    return "\n".join(lines) + "\n"


def ratios(models: dict, duel: dict | None = None) -> dict:
    """The acceptance figures of issue 6 (retrained vs DeepFM inference from the duel when run)."""
    out = {}
    ours, peer = models.get("deepfm"), models.get("fuxictr_deepfm")
    if ours and peer:
        out["deepfm_train_vs_fuxictr"] = round(ours["train"]["samples_per_s"] / peer["train"]["samples_per_s"], 2)
        out["deepfm_inference_vs_fuxictr"] = round(
            ours["inference"]["samples_per_s"] / peer["inference"]["samples_per_s"], 2
        )
    search = models.get("aim_search_interaction")
    if ours and search:
        out["search_epoch_orders_le_3_vs_deepfm_epoch"] = round(
            search["train"]["seconds"] / ours["train"]["seconds"], 2
        )
        for order, entry in search["train"].items():
            if order.startswith("order_"):
                out[f"search_{order}_epoch_vs_deepfm_epoch"] = round(entry["seconds"] / ours["train"]["seconds"], 2)
    retrained = models.get("aim_retrained")
    if ours and retrained:
        out["retrained_aim_inference_vs_deepfm_separate_runs"] = round(
            retrained["inference"]["samples_per_s"] / ours["inference"]["samples_per_s"], 2
        )
    if duel:
        out["retrained_aim_inference_vs_deepfm"] = duel["retrained_vs_deepfm"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", default="deepfm,aim", help="comma list of deepfm, aim")
    parser.add_argument("--no-fuxictr", action="store_true", help="skip the FuxiCTR side-by-side run")
    parser.add_argument("--compile", action="store_true", help="torch.compile our models")
    parser.add_argument("--workdir", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/perf_<rows>.json")
    parser.add_argument(
        "--grda-c", type=float, default=None, help="interaction GRDA c for the AIM search (default: params.yaml's)"
    )
    parser.add_argument("--child", choices=["deepfm", "aim", "duel"], help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.child:
        run = {"deepfm": child_deepfm, "aim": child_aim, "duel": child_duel}[args.child]
        extra = {"grda_c": args.grda_c} if args.child == "aim" else {}
        print(json.dumps(run(args.prepared, device, args.compile, **extra)))
        return
    prepared = prepared_dir(args.rows, args.workdir)
    meta = json.loads((prepared / "meta.json").read_text())
    models: dict = {}
    load_before = os.getloadavg()[0]
    for kind in args.models.split(","):
        print(f"running {kind} ...", flush=True)
        models.update(run_child(kind, prepared, args.compile, args.grda_c))
    duel = None
    if {"deepfm", "aim_retrained"} <= set(models):
        print("running the inference duel ...", flush=True)
        duel = run_child("duel", prepared, args.compile)
    if not args.no_fuxictr:
        from fuxictr_peer import run_fuxictr

        print("running FuxiCTR DeepFM ...", flush=True)
        peer = run_fuxictr(prepared, {"device": device.type}, args.workdir / f"fuxictr_{args.rows}.json")
        models["fuxictr_deepfm"] = {
            "train": _region(peer["rows"]["train"], peer["train"]["seconds"], peer["train"]["data_s"]),
            "inference": _region(peer["rows"]["valid"], peer["inference"]["seconds"], peer["inference"]["data_s"]),
            "parameters": peer["parameters"],
            "peak_rss_gb": round(peer["peak_rss_mb"] / 1024, 2),
            "valid_auc": peer.get("valid_auc"),
        }
    report = {
        "rows": args.rows,
        "train_rows": meta["splits"]["train"],
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "compile": args.compile,
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "loadavg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "models": models,
        "inference_duel": duel,
        "ratios": ratios(models, duel),
    }
    out = args.out or HERE / "results" / f"perf_{args.rows}{'_compile' if args.compile else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"results -> {out}")


if __name__ == "__main__":
    main()
