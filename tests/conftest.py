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


EVENTS_TABLE = {
    "path": "events.csv",
    "label": {"column": "click"},
    "categorical": ["user_id", "item_id", "age", "gender", "category"],
    "multi_hot": {"genres": "|"},
    "timestamp": {"column": "ts"},
    "entities": ["user_id", "item_id"],
}


def write_events_csv(path: Path, rows: int = 3000, seed: int = 0, users: int = 150, items: int = 80) -> Path:
    """A small click log with user and item entities whose attributes never change.

    Clicks depend on an age × category interaction (something a model can learn); timestamps
    increase with the row number, so the time split puts the last rows in valid/test.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    user_age = rng.integers(0, 4, users)
    user_gender = rng.choice(["F", "M"], users)
    item_category = rng.integers(0, 5, items)
    genres = ["action", "comedy", "drama", "horror", "scifi"]
    item_genres = ["|".join(rng.choice(genres, rng.integers(1, 3), replace=False)) for _ in range(items)]
    u = rng.integers(0, users, rows)
    i = rng.integers(0, items, rows)
    logit = 1.5 * ((user_age[u] + item_category[i]) % 2 == 0) - 0.75 + rng.normal(0, 0.5, rows)
    click = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    lines = ["user_id,item_id,age,gender,category,genres,ts,click"]
    for k in range(rows):
        lines.append(
            f"u{u[k]},i{i[k]},{user_age[u[k]]},{user_gender[u[k]]},c{item_category[i[k]]},{item_genres[i[k]]},"
            f"{1_600_000_000 + 60 * k},{click[k]}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path
