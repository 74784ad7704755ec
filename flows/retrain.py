"""The ``retrain`` flow: the paper's cheap daily path — new data, architecture fixed.

validate → features → control → retrain (from the existing ``architecture.json``) → evaluate →
promote. The control is retrained too, so that both models see the same vocabularies and the
gate compares like with like. Deployment (a daily cron) in ``prefect.yaml``.
"""

from __future__ import annotations

from prefect import flow

from aim.config import load_params
from aim.errors import ModelError
from flows import tasks
from flows.training import evaluate_and_promote, prepared_data


@flow(name="retrain", log_prints=True)
def retrain_flow(params: str = "params.yaml", overrides: list[str] | None = None, gpu_slots: int = 1) -> dict:
    """Retrain the searched architecture and the control on the newest data, then the gate."""
    cfg = load_params(params, overrides)
    architecture = cfg.path(cfg.artifacts) / "architecture.json"
    if not architecture.exists():
        raise ModelError(f"{architecture} is missing: run the training flow (or `dvc repro`) once to search it")
    tasks.ensure_gpu_limit(gpu_slots)
    prepared_data(params, overrides)
    tasks.train_control(params, overrides, cfg.promote.control)
    tasks.retrain(params, overrides)
    return evaluate_and_promote(params, overrides)


if __name__ == "__main__":
    retrain_flow()
