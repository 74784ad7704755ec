"""Check that two checkouts' `aim prepare` give the same outputs, case by case.

Runs `aim prepare` from a reference checkout (e.g. main) and a candidate checkout on the same
inputs, each in its own folder, and compares: every file of the prepared folder byte for byte
(arrays, parquet, vocab.parquet, quarantine.csv), summary.json and meta.json except ``seconds``
and ``created_at``, the warehouse tables and views, and for failing cases the exit code and the
one-line error. Paths are compared relative to each run's folder. The candidate may run with a
small Arrow chunk size (``--chunk-bytes``) so that small files span many chunks.

    python bench/prepare_equivalence.py --reference /work/main --candidate .
    python bench/prepare_equivalence.py --reference /work/main --candidate . --big bench/work/criteo_1000000/criteo.tsv
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

RUNNER = """
import os, sys
try:
    import aim.data.arrow_csv as fast
    fast.CHUNK_BYTES = int(os.environ.get("EQ_CHUNK_BYTES") or fast.CHUNK_BYTES)
except ImportError:
    pass
from aim.cli import app
sys.argv = ["aim", "prepare", "--params", sys.argv[1]]
app()
"""


def criteo_lines(n: int, seed: int) -> list[str]:
    """Criteo-like lines: label, 13 ints (some missing), 26 hex categoricals (some missing)."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(-3, 3000, size=(n, 13)).astype(str)
    ints[rng.random((n, 13)) < 0.1] = ""
    cats = np.char.mod("%08x", rng.zipf(1.3, size=(n, 26)) % 5000).astype(str)
    cats[rng.random((n, 26)) < 0.05] = ""
    labels = (rng.random(n) < 0.25).astype(int).astype(str)
    return ["\t".join([labels[i], *ints[i], *cats[i]]) for i in range(n)]


def malformed(lines: list[str]) -> list[str]:
    """Bad lines spread over the file: column counts, types, labels, empty lines, odd text."""
    out = list(lines)
    good = out[0].split("\t")
    bad = {
        10: "\t".join(good[:-3]),
        200: "\t".join(good[:3] + ["abc"] + good[4:]),
        450: "\t".join(["2", *good[1:]]),
        451: "\t".join(["", *good[1:]]),
        900: "\t".join([*good, "extra"]),
        1300: "",
        1301: "",
        1700: "\t".join(good[:20] + [" spaced value "] + good[21:]),
        2100: "\t".join(good[:5] + ["+17"] + good[6:]),
        2101: "\t".join(good[:5] + ["007"] + good[6:]),
        2102: "\t".join(good[:5] + ["99999999999999999999"] + good[6:]),
        2500: "\t".join(good[:5] + [" 12"] + good[6:]),
        2900: "\t".join(good[:30] + ["__null__"] + good[31:]),
        3300: "\t".join(good[:2] + ["1.5"] + good[3:]),
    }
    for line_no, text in bad.items():
        out[line_no - 1] = text
    return out


def write(path: Path, lines: list[str], *, end: str = "\n", head: bytes = b"") -> None:
    path.write_bytes(head + (end.join(lines) + end).encode())


def events_csv(path: Path, n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user": rng.integers(0, 150, n).astype(str),
            "item": rng.integers(0, 80, n).astype(str),
            "price": np.round(rng.gamma(2, 10, n), 2),
            "tags": ["|".join(rng.choice(list("abcdef"), rng.integers(1, 4), replace=False)) for _ in range(n)],
            "ts": 1_700_000_000 + rng.integers(0, 10**6, n),
            "click": (rng.random(n) < 0.3).astype(int),
        }
    )
    frame.loc[5, "click"] = 7
    frame.to_csv(path, index=False)
    return frame


def avazu_csv(path: Path, n: int = 3000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "click": (rng.random(n) < 0.2).astype(int),
            "hour": np.char.mod("1410%02d", 21 + rng.integers(0, 9, n)).astype(object)
            + np.char.mod("%02d", rng.integers(0, 24, n)).astype(object),
            "site_id": rng.integers(0, 40, n).astype(str),
            "app_id": rng.integers(0, 30, n).astype(str),
            "device_id": rng.integers(0, 200, n).astype(str),
            "C1": rng.integers(0, 7, n).astype(str),
        }
    )
    frame.loc[7, "hour"] = "notanhour"
    frame.to_csv(path, index=False)


TABLE = {
    "label": {"column": "click"},
    "categorical": ["user", "item"],
    "numeric": ["price"],
    "multi_hot": {"tags": "|"},
    "timestamp": {"column": "ts"},
    "entities": ["user", "item"],
}


def cases(big: Path | None) -> dict[str, tuple[Callable[[Path], None], dict]]:
    """name -> (write the inputs into a folder, the data section of params.yaml)."""
    lines = criteo_lines(4000, seed=1)
    criteo = {"source": "criteo", "criteo": {"path": "criteo.tsv"}}
    found = {
        "criteo_clean": (lambda d: write(d / "criteo.tsv", lines), criteo),
        "criteo_no_final_newline": (lambda d: (d / "criteo.tsv").write_text("\n".join(lines)), criteo),
        "criteo_malformed": (
            lambda d: write(d / "criteo.tsv", malformed(lines)),
            criteo | {"max_quarantine_share": 0.5},
        ),
        "criteo_malformed_min_count_3": (
            lambda d: write(d / "criteo.tsv", malformed(lines)),
            criteo | {"max_quarantine_share": 0.5, "min_count": 3},
        ),
        "criteo_min_count_1_quantile": (
            lambda d: write(d / "criteo.tsv", lines),
            criteo | {"min_count": 1, "numeric": {"bucketing": "quantile", "quantile_buckets": 7}},
        ),
        "criteo_quantile_malformed": (
            lambda d: write(d / "criteo.tsv", malformed(lines)),
            criteo | {"max_quarantine_share": 0.5, "numeric": {"bucketing": "quantile"}},
        ),
        "criteo_crlf": (lambda d: write(d / "criteo.tsv", lines, end="\r\n"), criteo),
        "criteo_quote": (
            lambda d: write(d / "criteo.tsv", lines[:100] + [lines[100].replace("\t", '\t"', 1)] + lines[101:]),
            criteo | {"max_quarantine_share": 0.5},
        ),
        "criteo_bom": (lambda d: write(d / "criteo.tsv", lines, head=b"\xef\xbb\xbf"), criteo),
        "criteo_bad_utf8": (
            lambda d: (d / "criteo.tsv").write_bytes(
                ("\n".join(lines[:1000]) + "\n").encode()
                + lines[1000].replace("\t", "\t\xff", 1).encode("latin-1")
                + ("\n" + "\n".join(lines[1001:]) + "\n").encode()
            ),
            criteo | {"max_quarantine_share": 0.5},
        ),
        "criteo_empty_file": (lambda d: (d / "criteo.tsv").write_text(""), criteo),
        "criteo_missing_file": (lambda d: None, criteo),
        "criteo_all_bad": (lambda d: write(d / "criteo.tsv", ["a\tb"] * 50), criteo),
        "criteo_too_many_bad": (lambda d: write(d / "criteo.tsv", lines[:100] + ["x"] * 30), criteo),
        "avazu": (lambda d: avazu_csv(d / "avazu.csv"), {"source": "avazu", "avazu": {"path": "avazu.csv"}}),
        "table_csv": (
            lambda d: events_csv(d / "events.csv"),
            {"source": "table", "table": TABLE | {"path": "events.csv"}},
        ),
        "table_parquet": (
            lambda d: events_csv(d / "events.csv").to_parquet(d / "events.parquet"),
            {"source": "table", "table": TABLE | {"path": "events.parquet"}},
        ),
    }
    try:
        import recbole  # noqa: F401

        found["ml100k"] = (lambda d: None, {"source": "ml100k"})
    except ImportError:
        pass
    if big is not None:
        link = (lambda d: (d / "criteo.tsv").symlink_to(big.resolve()),)
        found["criteo_big"] = (link[0], criteo | {"max_quarantine_share": 0.5})
    return found


def run(checkout: Path, folder: Path, data: dict, chunk_bytes: int | None) -> tuple[int, str]:
    """Run `aim prepare` of ``checkout`` in ``folder``; (exit code, last stderr line)."""
    section = {"output_dir": "prepared", "warehouse": "warehouse.duckdb", "batch_rows": 1024} | data
    (folder / "params.yaml").write_text(yaml.safe_dump({"seed": 7, "device": "cpu", "data": section}))
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()), EQ_CHUNK_BYTES=str(chunk_bytes or ""))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(folder / "params.yaml")], cwd=folder, env=env, capture_output=True, text=True
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, (lines[-1] if lines else "").replace(str(folder), "<dir>")


def _json(path: Path, folder: Path) -> dict:
    data = json.loads(path.read_text().replace(str(folder), "<dir>"))
    for key in ("seconds", "created_at"):
        data.pop(key, None)
    return data


def _warehouse(path: Path, folder: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            rows = con.execute(f"SELECT * FROM {name}").fetchall()
            out[name] = [tuple(str(v).replace(str(folder), "<dir>") for v in row) for row in rows]
        if "meta" in out:
            out["meta"] = [json.dumps(_json_text(row[0])) for row in out["meta"]]
        out["views"] = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        return out
    finally:
        con.close()


def _json_text(text: str) -> dict:
    data = json.loads(text)
    data.pop("created_at", None)
    return data


def _same_text(a: Path, b: Path, ref: Path, cand: Path) -> bool:
    """The two files hold the same text once each run's folder is taken out of it."""
    return a.read_text().replace(str(ref), "") == b.read_text().replace(str(cand), "")


def compare(ref: Path, cand: Path) -> list[str]:
    """Differences between two finished runs' outputs (empty when identical)."""
    diffs = []
    a, b = ref / "prepared", cand / "prepared"
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return [f"file lists differ: {set(files_a) ^ set(files_b)}"]
    for rel in files_a:
        if rel.suffix == ".json":
            if _json(a / rel, ref) != _json(b / rel, cand):
                diffs.append(f"{rel} differs")
        elif not filecmp.cmp(a / rel, b / rel, shallow=False):
            if rel.name == "quarantine.csv" and _same_text(a / rel, b / rel, ref, cand):
                continue
            diffs.append(f"{rel} differs")
    if _warehouse(ref / "warehouse.duckdb", ref) != _warehouse(cand / "warehouse.duckdb", cand):
        diffs.append("warehouse differs")
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="checkout whose outputs are the reference")
    parser.add_argument("--candidate", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--chunk-bytes", type=int, default=64 * 1024, help="candidate's Arrow chunk size")
    parser.add_argument("--big", type=Path, help="also compare on this Criteo TSV (e.g. the 1M bench file)")
    parser.add_argument("--only", nargs="*", help="case names to run")
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aim-eq-") as tmp:
        for name, (make, data) in cases(args.big).items():
            if args.only and name not in args.only:
                continue
            ref, cand = Path(tmp) / name / "ref", Path(tmp) / name / "cand"
            for folder in (ref, cand):
                folder.mkdir(parents=True)
                make(folder)
            got_ref = run(args.reference, ref, data, None)
            got_cand = run(args.candidate, cand, data, args.chunk_bytes)
            if got_ref[0] != 0 or got_cand[0] != 0:
                diffs = [] if got_ref == got_cand else [f"errors differ: {got_ref} vs {got_cand}"]
                fallback = [p.name for p in ref.glob("quarantine-*.csv")]
                for file in fallback:
                    if not _same_text(ref / file, cand / file, ref, cand):
                        diffs.append(f"{file} differs")
                outcome = f"error (exit {got_ref[0]}): {got_ref[1][:100]}"
            else:
                diffs = compare(ref, cand)
                outcome = "ok"
            failures += bool(diffs)
            print(f"{name:32s} {'IDENTICAL' if not diffs else 'DIFFERENT'}  {outcome}  {'; '.join(diffs)}", flush=True)
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)
    print("all identical" if not failures else f"{failures} case(s) differ")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
