"""Atomic publication of outputs: build beside the target, then switch with renames.

A run writes into ``.<name>.tmp-<pid>`` next to the target. Only when everything is written is
the target replaced (``os.replace`` for a file; for a folder, the old one is renamed aside and
the new one renamed in). An interrupted run leaves at most a temp folder, never a half-written
target; :func:`clean_stale` removes temp leftovers of dead runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# ``.<name>.<kind>-<pid>`` plus any suffix a tool adds beside it (DuckDB's ``.wal``)
_LEFTOVER_PID = re.compile(r"-(\d+)(\.[A-Za-z]+)?$")


def temp_path(target: Path) -> Path:
    """The private build location for ``target`` in this process."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove temp and aside copies of ``target`` left by runs that no longer live."""
    removed = []
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        match = _LEFTOVER_PID.search(leftover.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _pid_alive(pid):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def publish(built: Path, target: Path) -> None:
    """Replace ``target`` by ``built`` (file or folder) so readers never see a partial one."""
    if built.is_dir():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, aside)
        os.replace(built, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(built, target)
