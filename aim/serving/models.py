"""The two arms' models, loaded from the registry once at start-up and checked against the data.

The control arm serves the latest registered version named ``promote.control`` (DeepFM); the
treatment arm the latest registered version named ``promote.challenger`` (default
``search.variant``). Start-up fails with a :class:`~aim.errors.ModelError` that says what to run
when the registry is empty, a model is missing or corrupt (sha256 / shape checks of
:meth:`ModelRegistry.load`), or a model's fields and vocabulary sizes differ from the current
training data's ``meta.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from aim.config import Params
from aim.data.arrays import PreparedData
from aim.errors import ModelError
from aim.registry import ModelRegistry
from aim.serving.arms import CONTROL, TREATMENT, Arm

log = logging.getLogger(__name__)


@dataclass
class ArmModel:
    """One arm's model in eval mode, with what identifies it."""

    arm: Arm
    name: str
    version: str
    data_version: str | None
    model: torch.nn.Module = field(repr=False)
    config: dict = field(repr=False)

    def describe(self) -> dict:
        """Name, version and data version (what ``GET /version`` shows)."""
        return {"name": self.name, "version": self.version, "data_version": self.data_version}


def arm_names(params: Params) -> dict[Arm, str]:
    """Arm -> registered model name: control = promote.control, treatment = the challenger."""
    return {CONTROL: params.promote.control, TREATMENT: params.promote.challenger or params.search.variant}


def latest_version(registry: ModelRegistry, name: str) -> str | None:
    """The newest registered version whose ``info.json`` name is ``name``."""
    for version in reversed(registry.versions()):
        if registry.info(version).get("name") == name:
            return version
    return None


def expected_fields(meta: dict) -> list[list]:
    """``[[field, vocab size], ...]`` in model order, as model configs store them."""
    return [[f["name"], f["vocab_size"]] for f in meta["fields"]]


def _check_fields(arm: ArmModel, meta: dict, meta_path: str) -> None:
    """Refuse a model trained on other fields or vocabularies than the current training data."""
    want, got = expected_fields(meta), arm.config.get("fields")
    if got == want:
        return
    if got is None:
        problem = "its config.json lists no fields"
    else:
        diff = [
            f"{g[0]}: {g[1]} in the model vs {w[1]}" if g[0] == w[0] else f"{g[0]} in the model vs {w[0]}"
            for g, w in zip(got, want, strict=False)
            if g != w
        ]
        if len(got) != len(want):
            diff.append(f"{len(got)} fields in the model vs {len(want)}")
        problem = "; ".join(diff[:4])
    raise ModelError(
        f"{arm.arm} model {arm.name} {arm.version} does not match the fields/vocabularies of {meta_path} "
        f"({problem}): retrain it on the current data and register it again "
        f"(`aim train --model {arm.name}` or `aim retrain`, then `aim evaluate` and `aim promote`)"
    )


def load_arms(params: Params, device: torch.device | str = "cpu") -> dict[Arm, ArmModel]:
    """Both arms' models, checked; a ModelError saying what to run when one cannot serve."""
    root = params.path(params.promote.registry)
    registry = ModelRegistry(root)
    if not registry.versions():
        raise ModelError(
            f"no model is registered in {root}: train and register models first "
            "(`aim train --model deepfm`, train the challenger, `aim evaluate`, then `aim promote`)"
        )
    data = PreparedData(params.training_dir())
    meta_path = str(data.folder / "meta.json")
    arms: dict[Arm, ArmModel] = {}
    for arm, name in arm_names(params).items():
        version = latest_version(registry, name)
        if version is None:
            known = sorted({registry.info(v).get("name") for v in registry.versions()})
            setting = "promote.control" if arm == CONTROL else "promote.challenger (or search.variant)"
            raise ModelError(
                f"no version of '{name}' (the {arm} arm, {setting}) is registered in {root} "
                f"(registered: {', '.join(map(str, known))}): run `aim promote` with that model trained and "
                "evaluated, or point the setting at a registered model"
            )
        model, config = registry.load(version, device)
        model.eval()
        info = registry.info(version)
        loaded = ArmModel(arm, name, version, info.get("data_version"), model, config)
        _check_fields(loaded, data.meta, meta_path)
        if loaded.data_version != data.meta.get("data_version"):
            log.warning(
                "%s model %s %s was trained on data version %s, the training data is now %s",
                arm,
                name,
                version,
                loaded.data_version,
                data.meta.get("data_version"),
            )
        arms[arm] = loaded
        log.info("%s arm: %s %s (data %s)", arm, name, version, loaded.data_version)
    return arms
