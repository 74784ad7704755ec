"""The ``aim`` command line: one command per pipeline stage, all reading ``params.yaml``."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from aim.config import Params, PlantedConfig, SyntheticCriteoConfig, load_params
from aim.errors import AimError

app = typer.Typer(
    help="aim-ctr: the Automatic Interaction Machine for CTR prediction, stage by stage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
generate_app = typer.Typer(help="Write synthetic data sets to files.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

ParamsPath = Annotated[
    Path,
    typer.Option("--params", "-p", help="The params.yaml to read (relative paths in it are relative to its folder)."),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-S", help="Override a parameter, e.g. -S data.source=criteo -S seed=3 (repeatable; values are YAML)."
    ),
]

F = TypeVar("F", bound=Callable)


def friendly_errors(func: F) -> F:
    """Report :class:`AimError` as one line on stderr with exit code 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AimError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, never to a stale stream
    (several invocations in one process, e.g. tests, each swap stderr and close the old one)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """Set up readable logging for every command."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[_CurrentStderr()],
        force=True,
    )


@app.command()
@friendly_errors
def prepare(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Prepare the data set named by data.source in params.yaml.

    Reads the source (ml100k, criteo, avazu, table, planted or synthetic_criteo), quarantines
    malformed lines (with line number and reason) into <output_dir>/quarantine.csv, splits by
    time (or at random without a timestamp), builds vocabularies on the training split only
    (values seen fewer than data.min_count times and unseen values -> id 0), buckets numeric
    fields, and writes atomically: the DuckDB warehouse (data.warehouse), memory-mapped arrays,
    parquet, vocab.parquet, meta.json and summary.json under data.output_dir.
    """
    from aim.pipeline.prepare import run_prepare

    cfg = load_params(params, overrides)
    summary = run_prepare(cfg)
    out = cfg.path(cfg.data.output_dir)
    rows, rate = summary["rows"], summary["positive_rate"]
    typer.echo(
        f"prepared {rows['total']:,} rows ({rows['train']:,} train / {rows['valid']:,} valid / "
        f"{rows['test']:,} test), positive rate {rate['all']:.4f}, "
        f"{summary['quarantined_rows']:,} quarantined, in {summary['seconds']:.1f}s -> {out}"
    )


@app.command()
@friendly_errors
def validate(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Check every prepared split with a Great Expectations suite derived from the schema.

    Columns and types, label in {0,1}, non-null entity keys, id ranges, non-empty, positive rate
    and per-field OOV rate within validation.* bounds against the training split. A failing split
    stops here (exit 2, naming the failed expectations) and is copied to validation.quarantine_dir.
    GX data docs (HTML) go to validation.docs_dir; figures to metrics/validate.json.
    """
    from aim.pipeline.validate import run_validate

    typer.echo(run_validate(load_params(params, overrides))["summary"])


@app.command()
@friendly_errors
def features(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Register the Feast feature views, materialize the online store and assemble the splits.

    Entity attribute tables are exported from the warehouse to parquet (DuckDB offline store),
    `apply` + `materialize` fill the online store (SQLite by default, Redis by features.online_store),
    and train/valid/test are assembled with point-in-time joins (get_historical_features) into
    features.output_dir, which the model stages read.
    """
    from aim.pipeline.features import run_features

    typer.echo(run_features(load_params(params, overrides))["summary"])


@app.command()
@friendly_errors
def promote(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Register the challenger and switch production to it only if it beats the DeepFM control.

    Needs a test-AUC gain of at least promote.min_delta with a paired test (DeLong or bootstrap)
    below promote.alpha; otherwise production stays as it was. The decision, both AUCs, the
    difference with its confidence interval and the reason go to metrics/promotion.json.
    """
    from aim.pipeline.promote import run_promote

    typer.echo(run_promote(load_params(params, overrides))["summary"])


@app.command()
@friendly_errors
def serve(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Start the scoring service on serve.host:serve.port (loopback by default).

    POST /score {user_id, item_ids, context?} -> scores, arm and model version; GET /health,
    GET /version. Entity features come from the Feast online store; the user's arm (stable hash,
    serve.treatment_share on the challenger) picks the model from the registry; every impression
    is logged to serve.impressions. Refuses to start when a model is missing or corrupt.
    """
    from aim.serving.server import run_server

    run_server(load_params(params, overrides))


@app.command()
@friendly_errors
def replay(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Send the held-out window (replay.split) through a scoring service started on loopback,
    then join the logged impressions with their true outcomes into per-window labelled logs
    under replay.output_dir/windows/ (at most replay.max_requests requests)."""
    from aim.pipeline.replay import run_replay

    typer.echo(run_replay(load_params(params, overrides))["summary"])


@app.command()
@friendly_errors
def monitor(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Evidently reports for every replay window: data drift against the training window,
    per-arm quality, and the A/B comparison of the challenger with the control (ΔAUC, Δlogloss
    with bootstrap intervals, top-k CTR), with pass/fail tests. HTML under monitor.reports_dir,
    snapshots in the Evidently workspace (monitor.workspace), figures in metrics/monitor.json.
    Exit code 0 even when a condition fails (the verdicts are in the figures); the Prefect
    monitoring flow is what fails a run."""
    from aim.pipeline.monitor import run_monitor

    typer.echo(run_monitor(load_params(params, overrides))["summary"])


def _load(params: Path, overrides: list[str] | None):
    cfg = load_params(params, overrides)
    from aim.training.batches import resolve_device

    typer.echo(f"device: {resolve_device(cfg.device)}", err=True)
    return cfg


@contextmanager
def _training(params: Path, overrides: list[str] | None) -> Iterator[Params]:
    """Load params and, under ``torchrun``, join the DDP process group for the stage.

    Every training stage runs on several processes with ``torchrun --nproc_per_node=N -m aim.cli
    <stage>`` (gloo on CPU, nccl on GPUs); only rank 0 writes artefacts and prints the summary.
    """
    from aim.training.distributed import is_main, session

    loaded = _load(params, overrides)
    with session(loaded.device):
        yield loaded
        if not is_main():
            raise typer.Exit(0)


@app.command("search-interaction")
@friendly_errors
def search_interaction_cmd(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Stage 1: search which interactions (FIS) and interaction functions (IFS) to keep.

    Gates α over every pair × function, sparsified by GRDA, then order by order up to
    search.max_order from the top ⌊n/2⌋ interactions of the order below (AIM Algorithm 1).
    Writes <artifacts>/search/interaction.json, a heat-map and metrics/search_interaction.json.
    """
    from aim.pipeline.models import run_search_interaction

    with _training(params, overrides) as loaded:
        arch = run_search_interaction(loaded)
    counts = {p: sum(i.order == p for i in arch.interactions) for p in arch.orders}
    typer.echo(f"kept interactions per order: {counts}")


@app.command("search-embed")
@friendly_errors
def search_embed_cmd(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Stage 2: search how many embedding dimensions each field needs (EDS).

    β gates per field and dimension with the stage-1 interactions fixed. Writes the final
    <artifacts>/architecture.json, alpha_heatmap.png and embedding_widths.png. Variants without
    EDS (search.variant) pass the stage-1 architecture through with full widths.
    """
    from aim.pipeline.models import run_search_embed

    with _training(params, overrides) as loaded:
        arch = run_search_embed(loaded)
    typer.echo(f"kept embedding widths (of {arch.dim}): {arch.widths}")


@app.command()
@friendly_errors
def retrain(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Stage 3: train the model that ships from architecture.json (kept rows, narrow tables, MLP).

    Checkpoint in <artifacts>/models/<variant>/, summary in metrics/retrain.json.
    """
    from aim.pipeline.models import run_retrain

    with _training(params, overrides) as loaded:
        summary = run_retrain(loaded)
    typer.echo(
        f"{summary['model']}: best valid AUC {summary['best_valid_auc']:.4f} at epoch {summary['best_epoch']}, "
        f"{summary['parameters']:,} parameters ({summary['embedding_parameters']:,} in embeddings)"
    )


@app.command("train")
@friendly_errors
def train_cmd(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="lr | fm | fwfm | deepfm (the control) | ipnn | deepfm_transfer | ipnn_transfer "
            "(transfer: the base model on architecture.json's interactions).",
        ),
    ] = "deepfm",
    params: ParamsPath = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Train a base model with early stopping on validation AUC; checkpoint in <artifacts>/models/NAME/."""
    from aim.pipeline.models import run_train

    with _training(params, overrides) as loaded:
        summary = run_train(loaded, model)
    typer.echo(
        f"{model}: best valid AUC {summary['best_valid_auc']:.4f} at epoch {summary['best_epoch']}, "
        f"{summary['parameters']:,} parameters, {summary['seconds']:.1f}s"
    )


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(params: ParamsPath = Path("params.yaml"), overrides: Overrides = None) -> None:
    """Score trained models on the test split: AUC, logloss, parameters, train seconds, rows/s.

    Writes metrics/evaluate.json (evaluate.models picks the models; default every one trained).
    """
    from aim.pipeline.models import run_evaluate

    report = run_evaluate(_load(params, overrides))
    width = max(len(n) for n in report)
    typer.echo(f"{'model':<{width}}  test AUC  logloss  parameters  train s   rows/s")
    for name, r in report.items():
        typer.echo(
            f"{name:<{width}}  {r['test_auc']:.4f}    {r['test_logloss']:.4f}  {r['parameters']:>10,}  "
            f"{r['train_seconds']:>7.1f}  {r['inference_rows_per_s']:>7,.0f}"
        )


@generate_app.command("planted")
@friendly_errors
def generate_planted(
    out: Annotated[Path, typer.Option(help="Folder for data.csv and the ground truth.")] = Path("data/raw/planted"),
    rows: Annotated[int, typer.Option(help="Number of rows.")] = 100_000,
    fields: Annotated[int, typer.Option(help="Number of fields m.")] = 6,
    values: Annotated[int, typer.Option(help="Values per field N.")] = 60,
    pairs: Annotated[str, typer.Option(help="Planted pairs as JSON.")] = "[[0,1],[2,5],[3,4]]",
    triple: Annotated[str, typer.Option(help="Planted 3-way term as JSON, or 'null'.")] = "null",
    noise: Annotated[float, typer.Option(help="Std of the noise term.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2026,
) -> None:
    """Write the AutoFIS planted-interaction set (section 4.5.2) and its ground truth."""
    from aim.data.synthetic import ensure_planted

    cfg = PlantedConfig(
        rows=rows,
        fields=fields,
        values=values,
        pairs=json.loads(pairs),
        triple=json.loads(triple),
        noise=noise,
        dir=out,
    )
    ensure_planted(out, cfg, seed)
    typer.echo(f"wrote {rows:,} planted rows and ground truth to {out}")


@generate_app.command("criteo")
@friendly_errors
def generate_criteo(
    out: Annotated[Path, typer.Option(help="TSV file to write.")] = Path("data/raw/criteo_synthetic.tsv"),
    rows: Annotated[int, typer.Option(help="Number of rows.")] = 1_000_000,
    max_vocab: Annotated[int, typer.Option(help="Largest categorical vocabulary.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2026,
) -> None:
    """Write a Criteo-format TSV (label, 13 integer, 26 categorical; Zipf frequencies)."""
    from aim.data.synthetic import ensure_criteo_like

    ensure_criteo_like(out, SyntheticCriteoConfig(rows=rows, max_vocab=max_vocab, path=out), seed)
    typer.echo(f"wrote {rows:,} Criteo-format rows to {out}")


if __name__ == "__main__":
    app()
