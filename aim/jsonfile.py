"""Reading a JSON file that a stage wrote, with an error that says what to do when it is broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aim.errors import AimError


def read_json(path: Path, error: type[AimError], fix: str) -> Any:
    """The parsed content of ``path``; invalid JSON raises ``error`` naming the file and ``fix``."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc}): {fix}") from exc
