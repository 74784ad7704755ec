"""Serve every deployment of ``prefect.yaml`` from this process: ``python -m flows.serve``.

The schedules come from ``prefect.yaml`` (one source of truth); ``serve`` runs due flow runs
in subprocesses until stopped, and leaves the schedules active when it stops.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect import Flow, serve
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

PROJECT_FILE = Path(__file__).resolve().parent.parent / "prefect.yaml"


def declared_deployments(path: Path = PROJECT_FILE) -> list[dict]:
    """The ``deployments`` entries of ``prefect.yaml``."""
    return yaml.safe_load(path.read_text())["deployments"]


def load_flow(entrypoint: str, root: Path = PROJECT_FILE.parent) -> Flow:
    """The flow object an entrypoint such as ``flows/training.py:training_flow`` names."""
    file, name = entrypoint.split(":")
    return load_flow_from_entrypoint(f"{root / file}:{name}")


def to_runner_deployments(path: Path = PROJECT_FILE) -> list:
    """One runner deployment per ``prefect.yaml`` entry, with its cron schedules and parameters."""
    runners = []
    for entry in declared_deployments(path):
        schedules = [Cron(s["cron"], timezone=s.get("timezone", "UTC")) for s in entry.get("schedules", [])]
        flow = load_flow(entry["entrypoint"], path.parent)
        runners.append(
            flow.to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                tags=entry.get("tags"),
                parameters=entry.get("parameters"),
                schedules=schedules,
            )
        )
    return runners


def main() -> None:
    """Serve all declared deployments until interrupted."""
    serve(*to_runner_deployments(), pause_on_shutdown=False)


if __name__ == "__main__":
    main()
