"""Benchmark: `aim prepare` on Criteo-format files from the generator, at 1M and 10M rows.

Prints rows/s, CPU seconds (user + system) and peak resident memory of the prepare process for
each size, and the cost ratio between sizes (linear cost: time ratio ~ row ratio). The timed
region is the whole `aim prepare` subprocess (interpreter start and imports, parse, quarantine,
split, vocabularies, encode, arrays, parquet, warehouse, atomic publish); generating the input
file is not timed. CPU seconds are the steadier figure on a shared machine: wall time also
counts time spent waiting for a core.

    python bench/prepare_throughput.py                 # 1M and 10M rows
    python bench/prepare_throughput.py --rows 2000000  # any sizes
    python bench/prepare_throughput.py --repeat 5      # median, min and max of 5 runs per size

With ``--repeat K`` each size is prepared K times; the figures reported are the median run's, and
the spread (fastest and slowest rows/s) is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from aim.config import SyntheticCriteoConfig
from aim.data.synthetic import ensure_criteo_like

HERE = Path(__file__).resolve().parent


def run_prepare(workdir: Path, tsv: Path, memory_limit: str) -> tuple[float, float, float, dict]:
    """Run `aim prepare` in a child process; return (seconds, CPU seconds, peak RSS in GB, summary)."""
    params = {
        "seed": 2026,
        "data": {
            "source": "criteo",
            "criteo": {"path": str(tsv)},
            "output_dir": "prepared",
            "warehouse": "warehouse.duckdb",
            "duckdb_memory_limit": memory_limit,
        },
    }
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "aim.cli", "prepare", "--params", str(workdir / "params.yaml")]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"aim prepare failed on {tsv}")
    summary = json.loads((workdir / "prepared" / "summary.json").read_text())
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--max-vocab", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit inside prepare")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; report the median run")
    parser.add_argument("--workdir", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "prepare_throughput.json")
    args = parser.parse_args()

    results = []
    for rows in args.rows:
        workdir = args.workdir / f"criteo_{rows}"
        workdir.mkdir(parents=True, exist_ok=True)
        tsv = workdir / "criteo.tsv"
        cfg = SyntheticCriteoConfig(rows=rows, max_vocab=args.max_vocab, path=tsv)
        t0 = time.perf_counter()
        ensure_criteo_like(tsv, cfg, seed=2026)
        generated = time.perf_counter() - t0
        runs = [run_prepare(workdir, tsv, args.memory_limit) for _ in range(max(1, args.repeat))]
        wall = [run[0] for run in runs]
        seconds, cpu_seconds, rss_gb, summary = runs[wall.index(statistics.median_low(wall))]
        result = {
            "rows": rows,
            "file_gb": tsv.stat().st_size / 1e9,
            "generate_seconds": round(generated, 1),
            "prepare_seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "rows_per_second": round(rows / seconds),
            "peak_rss_gb": round(rss_gb, 2),
            "runs": len(runs),
            "rows_per_second_min": round(rows / max(wall)),
            "rows_per_second_max": round(rows / min(wall)),
            "peak_rss_gb_max": round(max(run[2] for run in runs), 2),
            "quarantined_rows": summary["quarantined_rows"],
            "largest_vocab": max(f["vocab_size"] for f in summary["fields"].values()),
        }
        results.append(result)
        print(
            f"{rows:>11,} rows  {result['file_gb']:.2f} GB  prepare {seconds:7.1f} s  "
            f"(CPU {cpu_seconds:.1f} s)  {result['rows_per_second']:>9,} rows/s  peak RSS {rss_gb:.2f} GB  "
            f"largest vocab {result['largest_vocab']:,}"
            + (
                f"  [median of {len(runs)}: {result['rows_per_second_min']:,}-"
                f"{result['rows_per_second_max']:,} rows/s, "
                f"peak RSS up to {result['peak_rss_gb_max']:.2f} GB]"
                if len(runs) > 1
                else ""
            ),
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"cost growth: {last['rows'] / first['rows']:.0f}x rows -> "
            f"{last['prepare_seconds'] / first['prepare_seconds']:.1f}x time, "
            f"{last['peak_rss_gb'] / first['peak_rss_gb']:.1f}x peak RSS"
        )
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
