"""Prefect tasks: thin wrappers that load ``params.yaml`` and call the library's stage functions.

Nothing here computes anything itself: every task calls the ``aim.pipeline`` function that the
matching ``aim`` CLI command (and so the DVC stage) calls. What the tasks add is orchestration:

- I/O stages (prepare, features, promote) retry transient failures, but never a data or
  configuration error (:class:`aim.errors.AimError`), which a retry cannot fix;
- the three GPU stages (search-interaction, search-embed, retrain) and the control's training
  carry the ``gpu`` tag, which :func:`ensure_gpu_limit` caps, and log the device they run on;
- the two search stages are cached on a hash of the data version and the parameters they read:
  their result *is* their artefact (the architecture as a dict), which the flow writes back to
  disk when the cache answers, so a cache hit is as good as a run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.client.orchestration import get_client

from aim.config import Params, load_params
from aim.data.arrays import PreparedData
from aim.errors import AimError
from aim.training.batches import resolve_device

GPU_TAG = "gpu"


def _params(params_path: str, overrides: list[str] | None) -> Params:
    return load_params(params_path, overrides)


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Retry only failures a retry can fix: not bad data, bad parameters or a broken model file."""
    try:
        state.result()
    except AimError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient (disk, locks, network stores)
        return True
    return False


IO = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _retry_unless_user_error}


def settings_digest(params: Params, *sections: str) -> str:
    """A short hash of the parameter sections a stage reads (what its cache key depends on)."""
    dump = params.model_dump(mode="json")
    picked = {name: dump[name] for name in sections}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def data_version(params: Params) -> str:
    """The version of the data the model stages read (hash of the sources and data params)."""
    return PreparedData(params.training_dir()).meta["data_version"]


def ensure_gpu_limit(limit: int) -> None:
    """Create (or update) the tag concurrency limit on ``gpu`` tasks."""
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=limit)


def _log_device(params: Params) -> None:
    get_run_logger().info("device: %s", resolve_device(params.device))


@task(name="prepare", **IO)
def prepare(params_path: str, overrides: list[str] | None) -> dict:
    """Read the source, quarantine bad rows, split, encode (``aim prepare``)."""
    from aim.pipeline.prepare import run_prepare

    summary = run_prepare(_params(params_path, overrides))
    get_run_logger().info("prepared %s rows, data version %s", summary["rows"], summary["data_version"])
    return summary


@task(name="validate")
def validate(params_path: str, overrides: list[str] | None) -> dict:
    """Great Expectations on every split; raises (and quarantines) on failure (``aim validate``)."""
    from aim.pipeline.validate import run_validate

    result = run_validate(_params(params_path, overrides))
    get_run_logger().info(result["summary"])
    return result


@task(name="features", **IO)
def features(params_path: str, overrides: list[str] | None) -> dict:
    """Feast apply, materialize and point-in-time assembly of the splits (``aim features``)."""
    from aim.pipeline.features import run_features

    result = run_features(_params(params_path, overrides))
    get_run_logger().info(result["summary"])
    return result


@task(name="train-control", tags=[GPU_TAG])
def train_control(params_path: str, overrides: list[str] | None, model: str) -> dict:
    """Train the control (DeepFM) with early stopping (``aim train --model deepfm``)."""
    from aim.pipeline.models import run_train

    params = _params(params_path, overrides)
    _log_device(params)
    return run_train(params, model)


@task(name="search-interaction", tags=[GPU_TAG], cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def search_interaction(params_path: str, overrides: list[str] | None, version: str, digest: str) -> dict:
    """Stage 1 (FIS + IFS); cached on (data ``version``, parameter ``digest``). Returns the artefact."""
    from aim.pipeline.models import run_search_interaction

    params = _params(params_path, overrides)
    _log_device(params)
    return run_search_interaction(params).to_dict()


@task(name="search-embed", tags=[GPU_TAG], cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def search_embed(params_path: str, overrides: list[str] | None, version: str, digest: str, upstream: dict) -> dict:
    """Stage 2 (EDS) on stage 1's ``upstream`` architecture; cached like stage 1."""
    from aim.pipeline.models import run_search_embed

    params = _params(params_path, overrides)
    _log_device(params)
    return run_search_embed(params).to_dict()


@task(name="retrain", tags=[GPU_TAG])
def retrain(params_path: str, overrides: list[str] | None) -> dict:
    """Stage 3: the model that ships, from ``architecture.json`` (``aim retrain``)."""
    from aim.pipeline.models import run_retrain

    params = _params(params_path, overrides)
    _log_device(params)
    return run_retrain(params)


@task(name="evaluate")
def evaluate(params_path: str, overrides: list[str] | None, models: list[str]) -> dict:
    """Test AUC / logloss / size / speed of ``models`` (``aim evaluate``)."""
    from aim.pipeline.models import run_evaluate

    params = _params(params_path, [*(overrides or []), f"evaluate.models={json.dumps(models)}"])
    return run_evaluate(params)


@task(name="promote", **IO)
def promote(params_path: str, overrides: list[str] | None) -> dict:
    """The gate: register the challenger, switch production only if it wins (``aim promote``)."""
    from aim.pipeline.promote import run_promote

    result = run_promote(_params(params_path, overrides))
    get_run_logger().info(result["summary"])
    return result


def restore_artifact(path: Path, architecture: dict) -> bool:
    """Write a cached architecture back to ``path`` unless the file already holds it; True if written."""
    from aim.search.architecture import Architecture

    arch = Architecture.from_dict(architecture)
    if path.exists():
        try:
            if Architecture.load(path).to_dict() == arch.to_dict():
                return False
        except AimError:
            pass
    arch.save(path)
    return True


def stage_names(params: Params) -> dict[str, Any]:
    """The challenger and control names the flows train, evaluate and compare."""
    return {"challenger": params.promote.challenger or params.search.variant, "control": params.promote.control}


@task(name="replay", **IO)
def replay(params_path: str, overrides: list[str] | None) -> dict:
    """The held-out window through the scoring service on loopback (``aim replay``)."""
    from aim.pipeline.replay import run_replay

    result = run_replay(_params(params_path, overrides))
    get_run_logger().info(result["summary"])
    return result


@task(name="monitor")
def monitor(params_path: str, overrides: list[str] | None) -> dict:
    """Evidently drift, per-arm quality and A/B reports per window (``aim monitor``)."""
    from aim.pipeline.monitor import run_monitor

    result = run_monitor(_params(params_path, overrides))
    get_run_logger().info(result["summary"])
    return result
