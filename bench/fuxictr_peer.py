"""Peer benchmark: FuxiCTR 2.3.10's DeepFM on our prepared data, in its own venv.

FuxiCTR is never a dependency of ``aim``: it lives in ``bench/.venv-fuxictr`` (pinned by
``bench/fuxictr-requirements.txt``, installed with ``--no-deps`` like our Makefile does) and
``bench/fuxictr_runner.py`` runs there in a subprocess. What is timed is stated in the runner's
docstring. Usage::

    python bench/fuxictr_peer.py --prepared bench/work/criteo_1000000/prepared [--max-rows N] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DEFAULT_VENV = BENCH / ".venv-fuxictr"
REQUIREMENTS = BENCH / "fuxictr-requirements.txt"
RUNNER = BENCH / "fuxictr_runner.py"
DEFAULT_OUT = BENCH / "results" / "fuxictr_peer.json"
BASE_PYTHON = "python3.11"
PIP_VERSION = "26.3"
STAMP = ".installed-stamp"


def venv_python(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def fingerprint() -> str:
    """What the venv must match: interpreter, pip version and the pinned set."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return f"{BASE_PYTHON} pip=={PIP_VERSION} requirements-sha256={digest}"


def is_current(venv: Path) -> bool:
    """True when the venv exists and was installed from the current pinned set."""
    stamp = venv / STAMP
    return venv_python(venv).exists() and stamp.exists() and stamp.read_text().strip() == fingerprint()


def pip(python: Path, *args: str) -> None:
    """Run the venv's pip quietly; raises on failure."""
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], check=True)


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create (or recreate when stale) the FuxiCTR venv from the pinned set; returns its python.

    A stamp holding :func:`fingerprint` makes the second call instant.
    """
    venv = Path(venv)
    if is_current(venv):
        return venv_python(venv)
    base = shutil.which(BASE_PYTHON)
    if base is None:
        raise RuntimeError(f"{BASE_PYTHON} not found on PATH")
    (venv / STAMP).unlink(missing_ok=True)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    python = venv_python(venv)
    pip(python, "install", "--quiet", f"pip=={PIP_VERSION}")
    pip(python, "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS))
    pip(python, "check")  # the pinned set is complete and consistent
    (venv / STAMP).write_text(fingerprint() + "\n")
    return python


def clean_env() -> dict[str, str]:
    """Environment for the runner: nothing of our venv or PYTHONPATH leaks into it."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PYTHONNOUSERSITE"] = "1"
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def run_fuxictr(prepared: Path, settings: dict, out: Path, venv: Path = DEFAULT_VENV, work: Path | None = None) -> dict:
    """Run the runner in the FuxiCTR venv on ``prepared``; writes ``out`` and returns its JSON.

    ``settings`` override the runner's defaults (unknown keys fail); ``work`` holds FuxiCTR's copy
    of the data (default: ``prepared/../fuxictr``).
    """
    python = ensure_venv(venv)
    command = [str(python), str(RUNNER), "--prepared", str(prepared), "--out", str(out)]
    command += ["--settings", json.dumps(settings)]
    if work is not None:
        command += ["--work", str(work)]
    subprocess.run(command, check=True, env=clean_env(), stdout=subprocess.DEVNULL)
    return json.loads(Path(out).read_text())


def summary(result: dict) -> str:
    """One line per region for the console."""
    lines = [f"fuxictr {result['version']} DeepFM, torch {result['torch']}, {result['threads']} threads"]
    for name in ("train", "inference"):
        r = result[name]
        lines.append(
            f"  {name}: {r['seconds']:.1f} s, {r['samples_per_s']:.0f} samples/s "
            f"(data {r['data_s']:.1f} s, compute {r['compute_s']:.1f} s)"
        )
    lines.append(
        f"  valid AUC {result['valid_auc']:.4f}, params {result['parameters']}, RSS {result['peak_rss_mb']:.0f} MB"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="our prepared data folder")
    parser.add_argument("--max-rows", type=int, default=None, help="truncate train and valid (smoke runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"result JSON (default {DEFAULT_OUT})")
    parser.add_argument("--settings", default="{}", help="JSON object overriding more settings")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)
    if args.max_rows is not None:
        settings["max_rows"] = args.max_rows
    result = run_fuxictr(args.prepared, settings, args.out)
    print(summary(result), file=sys.stdout)


if __name__ == "__main__":
    main()
