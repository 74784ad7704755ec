"""The ``training`` flow: validate → features → control → search stages → retrain → evaluate → promote.

The weekly path: it searches a new architecture. Run it once with ``python -m flows.training``;
its deployment (a weekly cron) is declared in ``prefect.yaml``.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from aim.config import load_params
from flows import tasks
from flows.artifacts import publish_decision, publish_metrics


def prepared_data(params_path: str, overrides: list[str] | None) -> None:
    """The shared head of both flows: new data in, validated, assembled by Feast."""
    tasks.prepare(params_path, overrides)
    tasks.validate(params_path, overrides)  # raises on a failing batch: nothing below runs
    tasks.features(params_path, overrides)


def evaluate_and_promote(params_path: str, overrides: list[str] | None) -> dict:
    """The shared tail: score challenger and control on the test split, then the gate."""
    params = load_params(params_path, overrides)
    names = tasks.stage_names(params)
    report = tasks.evaluate(params_path, overrides, [names["challenger"], names["control"]])
    publish_metrics(report)
    decision = tasks.promote(params_path, overrides)
    publish_decision(decision)
    return decision


@flow(name="training", log_prints=True)
def training_flow(params: str = "params.yaml", overrides: list[str] | None = None, gpu_slots: int = 1) -> dict:
    """Search a new AIM architecture, retrain it and promote it if it beats the DeepFM control.

    ``overrides`` are ``section.key=value`` strings as for ``aim -S``; ``gpu_slots`` caps how many
    ``gpu``-tagged tasks run at once across all flow runs.
    """
    log = get_run_logger()
    tasks.ensure_gpu_limit(gpu_slots)
    prepared_data(params, overrides)
    cfg = load_params(params, overrides)
    version = tasks.data_version(cfg)
    tasks.train_control(params, overrides, cfg.promote.control)
    stage1 = tasks.search_interaction(params, overrides, version, tasks.settings_digest(cfg, "seed", "model", "search"))
    if tasks.restore_artifact(cfg.path(cfg.artifacts) / "search" / "interaction.json", stage1):
        log.info("search-interaction answered from the cache (data %s): artefact restored", version)
    stage2 = tasks.search_embed(
        params, overrides, version, tasks.settings_digest(cfg, "seed", "model", "search"), stage1
    )
    if tasks.restore_artifact(cfg.path(cfg.artifacts) / "architecture.json", stage2):
        log.info("search-embed answered from the cache (data %s): artefact restored", version)
    tasks.retrain(params, overrides)
    return evaluate_and_promote(params, overrides)


if __name__ == "__main__":
    training_flow()
