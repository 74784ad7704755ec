"""Shared helpers: every test builds its own small files and params.yaml in a temp folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from aim.config import Params, load_params

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def write_params(folder: Path, data: dict, seed: int = 7, **sections) -> Path:
    """Write a params.yaml with the given ``data`` section (small, fast defaults) and other sections."""
    section = {"batch_rows": 4096, "duckdb_memory_limit": "512MB", "min_count": 1, **data}
    sections.setdefault("features", {"enabled": False})  # model tests read the prepared arrays directly
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": seed, "device": "cpu", "data": section, **sections}))
    return path


@pytest.fixture
def make_params(tmp_path):
    """Build a :class:`Params` rooted in ``tmp_path`` from a ``data`` section."""

    def build(data: dict, seed: int = 7, overrides: list[str] | None = None) -> Params:
        return load_params(write_params(tmp_path, data, seed), overrides)

    return build


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def criteo_line(label: int, ints: list, cats: list) -> str:
    """One Criteo TSV line (None -> empty field)."""
    cells = [str(label)] + ["" if v is None else str(v) for v in ints] + ["" if v is None else v for v in cats]
    return "\t".join(cells)
