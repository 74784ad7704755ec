"""Checkpoints: a state dict (``model.pt``) plus a JSON config (``config.json``) in one folder.

Loading uses ``torch.load(weights_only=True)`` and refuses, with a clear error, a file that is
unreadable or whose tensors do not match the model its config describes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from aim.errors import ModelError
from aim.jsonfile import read_json
from aim.models import MODELS

WEIGHTS, CONFIG = "model.pt", "config.json"


def build_model(config: dict) -> torch.nn.Module:
    """Instantiate the model a config describes (``{"model": name, "kwargs": {...}}``)."""
    name = config.get("model")
    if name not in MODELS:
        raise ModelError(f"unknown model '{name}' in checkpoint config; known: {', '.join(MODELS)}")
    return MODELS[name](**config.get("kwargs", {}))


def save_checkpoint(model: torch.nn.Module, config: dict, folder: Path) -> None:
    """Write ``model.pt`` and ``config.json`` (with tensor shapes) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, folder / WEIGHTS)
    shapes = {k: list(v.shape) for k, v in state.items()}
    (folder / CONFIG).write_text(json.dumps({**config, "shapes": shapes}, indent=2))


def load_checkpoint(folder: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from ``config.json`` and load ``model.pt`` into it, checking every tensor."""
    weights, config_path = folder / WEIGHTS, folder / CONFIG
    for path in (weights, config_path):
        if not path.exists():
            raise ModelError(f"{path} is missing: train the model first or restore the checkpoint folder")
    config = read_json(config_path, ModelError, "restore or retrain the checkpoint")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ModelError(
            f"{weights} is not a readable checkpoint ({type(exc).__name__}); restore or retrain it"
        ) from exc
    model = build_model(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:3]
        unexpected = sorted(set(got) - set(expected))[:3]
        wrong = [f"{k}: file {got[k]} vs config {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
        raise ModelError(
            f"{weights} does not match {config_path}: "
            + "; ".join(
                filter(
                    None,
                    [
                        f"missing {missing}" if missing else "",
                        f"unexpected {unexpected}" if unexpected else "",
                        *wrong[:3],
                    ],
                )
            )
        )
    model.load_state_dict(state)
    return model.to(device), config
