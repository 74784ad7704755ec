"""The model registry on disk: numbered, immutable model versions and a production pointer.

Layout under ``root`` (``promote.registry``, default ``models/registry``)::

    v0001/            one folder per registered version, never changed after registration
      model.pt        state dict (copied from the trained model's folder)
      config.json     what load_checkpoint rebuilds the model from
      train.json      training summary (when the model folder had one)
      info.json       name, version, created_at (UTC), metrics, data_version, git_commit, sha256
    v0002/ ...
    production.json   {"version", "name", "promoted_at", "reason"}: what serves
    history.jsonl     one JSON line per production switch: {"at", "from", "to", "name", "reason"}

A version number is claimed with an exclusive ``mkdir`` (two registrations never share one) and
``info.json`` is written last, atomically: a folder without it is an interrupted registration
and is not listed. The pointer is replaced atomically (``production.json.tmp`` + fsync +
``os.replace``), so readers see the old or the new production, never a torn file. No symlinks:
the layout works on any file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import torch

from aim.errors import ModelError
from aim.jsonfile import read_json
from aim.training.checkpoint import CONFIG, WEIGHTS, load_checkpoint

INFO, POINTER, HISTORY = "info.json", "production.json", "history.jsonl"
TRAIN_SUMMARY = "train.json"
PRODUCTION = "production"
_VERSION = re.compile(r"^v(\d{4,})$")


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(folder: Path) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``folder``; None without git or a repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(folder: Path) -> None:
    """Make a rename or new file in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, payload: dict, tmp: Path | None = None) -> None:
    """Write ``payload`` to ``tmp`` (default ``<path>.tmp``), fsync it, then ``os.replace`` it onto ``path``."""
    tmp = tmp or path.with_name(path.name + ".tmp")
    with tmp.open("w") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class ModelRegistry:
    """Model versions and the production pointer under ``root`` (see the module doc for the layout)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # -- versions ---------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Completely registered versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if _VERSION.match(p.name) and (p / INFO).exists()]
        return sorted(found, key=lambda v: int(v[1:]))

    def info(self, version: str) -> dict:
        """``info.json`` of ``version`` (or of the production version with ``"production"``)."""
        version = self.resolve(version)
        path = self.root / version / INFO
        return read_json(path, ModelError, "restore it or register the model again")

    def find(self, name: str, sha256: str, data_version: str | None, metrics: dict) -> str | None:
        """The newest version registering exactly this checkpoint, data version and metrics, if any."""
        for version in reversed(self.versions()):
            info = self.info(version)
            same = (info.get("name"), info.get("sha256"), info.get("data_version"), info.get("metrics"))
            if same == (name, sha256, data_version, metrics):
                return version
        return None

    def _claim(self) -> tuple[str, Path]:
        """Create the next free version folder; ``mkdir`` fails if a concurrent registration took it."""
        self.root.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
        number = max(taken, default=0) + 1
        while True:
            version = f"v{number:04d}"
            try:
                (self.root / version).mkdir()
            except FileExistsError:
                number += 1
                continue
            return version, self.root / version

    def register(self, model_dir: Path, *, name: str, metrics: dict, data_version: str | None) -> str:
        """Copy the checkpoint in ``model_dir`` into a new version folder and return its version."""
        model_dir = Path(model_dir)
        for file in (WEIGHTS, CONFIG):
            if not (model_dir / file).exists():
                raise ModelError(
                    f"{model_dir / file} is missing: train '{name}' (`aim train --model {name}` or "
                    "`aim retrain`) before registering it"
                )
        version, folder = self._claim()
        for file in (WEIGHTS, CONFIG, TRAIN_SUMMARY):
            if (model_dir / file).exists():
                shutil.copy2(model_dir / file, folder / file)
        info = {
            "name": name,
            "version": version,
            "created_at": _now(),
            "metrics": metrics,
            "data_version": data_version,
            "git_commit": git_commit(model_dir),
            "sha256": sha256_file(folder / WEIGHTS),
            "source": str(model_dir.resolve()),
        }
        write_json_atomic(folder / INFO, info)  # last: marks the registration complete
        return version

    # -- production -------------------------------------------------------------------------

    def production(self) -> str | None:
        """The production version, or None before the first promotion."""
        path = self.root / POINTER
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())["version"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelError(
                f"{path} is unreadable ({type(exc).__name__}): restore it from history.jsonl's last line"
            ) from exc

    def resolve(self, version: str) -> str:
        """``version`` itself, or the production version for ``"production"``; it must be registered."""
        if version == PRODUCTION:
            current = self.production()
            if current is None:
                raise ModelError(f"no production model in {self.root}: run `aim promote` first")
            version = current
        if not (self.root / version / INFO).exists():
            known = ", ".join(self.versions()) or "none"
            raise ModelError(f"model version '{version}' is not in {self.root} (registered: {known})")
        return version

    def promote(self, version: str, reason: str) -> None:
        """Make ``version`` production: atomic pointer switch, then one line appended to the history."""
        version = self.resolve(version)
        before = self.production()
        at = _now()
        name = self.info(version).get("name")
        write_json_atomic(self.root / POINTER, {"version": version, "name": name, "promoted_at": at, "reason": reason})
        line = json.dumps({"at": at, "from": before, "to": version, "name": name, "reason": reason})
        with (self.root / HISTORY).open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def history(self) -> list[dict]:
        """Every production switch, oldest first."""
        path = self.root / HISTORY
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- loading ----------------------------------------------------------------------------

    def verify(self, version: str) -> Path:
        """Check ``model.pt`` of ``version`` against the sha256 in its info.json; return the folder."""
        version = self.resolve(version)
        folder = self.root / version
        weights = folder / WEIGHTS
        if not weights.exists():
            raise ModelError(f"{weights} is missing: the registry copy is damaged, register the model again")
        expected = self.info(version).get("sha256")
        actual = sha256_file(weights)
        if actual != expected:
            raise ModelError(
                f"{weights} is corrupt: sha256 {actual[:12]}… differs from {expected and expected[:12]}… "
                f"in {folder / INFO}; restore the file or register the model again"
            )
        return folder

    def load(self, version: str = PRODUCTION, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
        """Model and config of ``version`` (or ``"production"``), after checking its checksum."""
        return load_checkpoint(self.verify(version), device)
