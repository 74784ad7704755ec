"""Benchmark: the model library on MovieLens-100k, on the time split and a random 8:1:1 split.

Runs each model through the same stage functions the CLI and the flows call (prepare, train,
search-interaction, search-embed, retrain, evaluate) with params.yaml plus the overrides given,
for several seeds, and writes one JSON row per (split, seed, model) to ``--out`` (rows already
there are reused, so an interrupted run resumes). Then prints, and writes as markdown, a table of
test AUC and logloss (mean ± std), parameters, search + train seconds and the share of
interactions kept, and a paired t-test of AIM against the DeepFM control over the seeds.

    python bench/ml100k_models.py                                  # everything, 5 seeds
    python bench/ml100k_models.py --seeds 1 --splits time --models deepfm aim_o3   # a quick look
    python bench/ml100k_models.py -S model.dim=32 --tag dim32     # any params.yaml override

On the random split every seed also draws a new split; the time split is the same for all seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from scipy.stats import ttest_rel

from aim.config import load_params
from aim.pipeline.models import run_evaluate, run_retrain, run_search_embed, run_search_interaction, run_train
from aim.pipeline.prepare import run_prepare

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (kind, overrides); searched models run the three stages, transfers reuse aim_o3's architecture
MODELS: dict[str, tuple[str, list[str]]] = {
    "fm": ("base", []),
    "fwfm": ("base", []),
    "deepfm": ("base", []),
    "ipnn": ("base", []),
    "autodeepfm": ("searched", ["search.variant=autodeepfm", "search.max_order=2"]),
    "aim_ifs_eds": ("searched", ["search.variant=aim_ifs_eds", "search.max_order=3"]),
    "aim_eds": ("searched", ["search.variant=aim_eds", "search.max_order=3"]),
    "aim_o2": ("searched", ["search.variant=aim", "search.max_order=2"]),
    "aim_o3": ("searched", ["search.variant=aim", "search.max_order=3"]),
    "deepfm_transfer": ("transfer", ["search.variant=aim", "search.max_order=3"]),
    "ipnn_transfer": ("transfer", ["search.variant=aim", "search.max_order=3"]),
}
CONTROL, CHALLENGERS = "deepfm", ("aim_o2", "aim_o3")


def _params(work: Path, split: str, seed: int, name: str, extra: list[str]):
    prepared = work / f"ml100k_{split}" / (f"seed{seed}" if split == "random" else "fixed")
    overrides = [
        "data.source=ml100k",
        f"data.split.method={split}",
        f"data.output_dir={prepared / 'prepared'}",
        f"data.warehouse={prepared / 'warehouse.duckdb'}",
        "features.enabled=false",  # models read the prepared arrays directly (same rows as Feast's)
        f"seed={seed}",
        f"artifacts={work / 'runs' / split / f'seed{seed}' / name}",
        f"metrics={work / 'runs' / split / f'seed{seed}' / name / 'metrics'}",
        "evaluate.models=null",
        *MODELS[name][1],
        *extra,
    ]
    return load_params(ROOT / "params.yaml", overrides)


def run_one(work: Path, split: str, seed: int, name: str, extra: list[str]) -> dict:
    """Train (and search) one model; return its test figures and costs."""
    params = _params(work, split, seed, name, extra)
    if not (params.path(params.data.output_dir) / "meta.json").exists():
        run_prepare(params)
    kind = MODELS[name][0]
    start = time.perf_counter()
    info: dict = {}
    if kind == "base":
        summary = run_train(params, name)
    elif kind == "searched":
        run_search_interaction(params)
        run_search_embed(params)
        summary = run_retrain(params)
        info = {"share_kept": summary["share_kept"], "widths": summary["widths"]}
    else:  # transfer: the architecture aim_o3 searched on this split and seed
        source = _params(work, split, seed, "aim_o3", extra)
        arch_file = source.path(source.artifacts) / "architecture.json"
        if not arch_file.exists():
            run_one(work, split, seed, "aim_o3", extra)
        target = params.path(params.artifacts)
        target.mkdir(parents=True, exist_ok=True)
        (target / "architecture.json").write_text(arch_file.read_text())
        summary = run_train(params, name)
    wall = time.perf_counter() - start
    report = run_evaluate(params)
    name_in_report = params.search.variant if kind == "searched" else name
    row = report[name_in_report]
    return {
        "split": split,
        "seed": seed,
        "model": name,
        "test_auc": row["test_auc"],
        "test_logloss": row["test_logloss"],
        "valid_auc": summary["best_valid_auc"],
        "parameters": row["parameters"],
        "seconds": summary["train_seconds"],
        "wall_seconds": wall,
        "inference_rows_per_s": row["inference_rows_per_s"],
        **info,
    }


def _mean_std(values: list[float], digits: int = 4) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def table(rows: list[dict], split: str) -> str:
    """Markdown table of one split, plus the paired tests against the control."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        if row["split"] == split:
            by_model.setdefault(row["model"], []).append(row)
    lines = [
        f"**{split} split** ({len(next(iter(by_model.values()), []))} seeds)",
        "",
        "| model | test AUC | test logloss | parameters | search + train s | kept 2-order | kept 3-order |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        runs = by_model.get(name)
        if not runs:
            continue
        kept = [r.get("share_kept", {}) for r in runs]
        share = [
            f"{statistics.mean(k.get(o, 0.0) for k in kept):.0%}" if any(o in k for k in kept) else "—"
            for o in ("2", "3")
        ]
        auc, logloss = _mean_std([r["test_auc"] for r in runs]), _mean_std([r["test_logloss"] for r in runs])
        params, seconds = statistics.mean(r["parameters"] for r in runs), statistics.mean(r["seconds"] for r in runs)
        lines.append(f"| {name} | {auc} | {logloss} | {params:,.0f} | {seconds:.0f} | {share[0]} | {share[1]} |")
    control = {r["seed"]: r["test_auc"] for r in by_model.get(CONTROL, [])}
    for name in (*CHALLENGERS, "aim_eds", "aim_ifs_eds"):
        mine = {r["seed"]: r["test_auc"] for r in by_model.get(name, [])}
        seeds = sorted(set(mine) & set(control))
        if len(seeds) >= 2:
            diff = statistics.mean(mine[s] - control[s] for s in seeds)
            test = ttest_rel([mine[s] for s in seeds], [control[s] for s in seeds])
            lines.append(
                f"\n{name} − deepfm: mean test AUC difference {diff:+.4f} over {len(seeds)} seeds, "
                f"paired t-test p = {test.pvalue:.3g}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["time", "random"], choices=["time", "random"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--set", "-S", dest="overrides", action="append", default=[], help="params override")
    parser.add_argument("--tag", default="default", help="names the result files of this configuration")
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "ml100k")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"ml100k_models_{args.tag}.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {(r["split"], r["seed"], r["model"]) for r in rows}
    work = args.workdir / args.tag
    for seed in range(args.seeds):  # seeds outermost: an interrupted run has every split at equal depth
        for split in args.splits:
            for name in args.models:
                if (split, seed, name) in done:
                    continue
                row = run_one(work, split, seed, name, args.overrides)
                rows.append(row)
                print(
                    f"{split:6s} seed {seed} {name:16s} test AUC {row['test_auc']:.4f} "
                    f"valid AUC {row['valid_auc']:.4f} params {row['parameters']:,} {row['seconds']:.0f}s",
                    flush=True,
                )
                out.write_text(json.dumps({"overrides": args.overrides, "rows": rows}, indent=1))
    report = "\n\n".join(table(rows, split) for split in args.splits)
    (results / f"ml100k_models_{args.tag}.md").write_text(
        f"Overrides: {args.overrides or 'none (params.yaml)'}\n\n{report}\n"
    )
    print(report)


if __name__ == "__main__":
    main()
