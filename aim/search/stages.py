"""The search stages as library functions. Each returns an :class:`Architecture` (and the
training results), so the next stage reads the previous one's artefact rather than pasted masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import torch

from aim.data.arrays import PreparedData
from aim.models.gated import Deep, GatedInteractions, gated_from_config
from aim.nn.interactions import FUNCTIONS
from aim.search.architecture import Architecture
from aim.search.candidates import all_pairs, default_top_k, next_order_pool
from aim.search.grda import GRDA
from aim.training.loop import TrainResult, TrainSettings, train

log = logging.getLogger(__name__)


@dataclass
class GRDASettings:
    """GRDA's knobs for the architecture parameters (see aim/search/grda.py)."""

    lr: float = 0.1
    c: float = 0.3
    mu: float = 0.8


@dataclass
class InteractionSearchSettings:
    """FIS (+ IFS when several functions) searched order by order up to ``max_order``."""

    dim: int = 16
    functions: tuple[str, ...] = FUNCTIONS
    max_order: int = 2
    top_k: int | None = None  # pool width for the next order; None = ⌊n/2⌋ (the paper)
    hidden: tuple[int, ...] = ()
    alpha_init: float = 0.6
    grda: GRDASettings = field(default_factory=GRDASettings)
    train: TrainSettings = field(default_factory=TrainSettings)


def _last_step(settings: TrainSettings) -> TrainSettings:
    """Search runs keep their last step, not the best epoch: GRDA's threshold grows with the
    step count, so an earlier epoch would undo the sparsity the search has reached."""
    return replace(settings, restore_best=False)


def search_interaction(
    data: PreparedData, settings: InteractionSearchSettings, device: torch.device
) -> tuple[Architecture, list[TrainResult]]:
    """AIM Algorithm 1 with FIS/IFS gates: search all pairs, then grow the pool order by order.

    At order p the model holds the rows kept at lower orders (their α trained on by Adam) and the
    order-p candidates × functions gated by GRDA. Rows whose α reaches exactly zero are dropped.
    """
    names = [f["name"] for f in data.fields]
    function_ids = torch.tensor([FUNCTIONS.index(f) for f in settings.functions])
    m = len(function_ids)
    top_k = settings.top_k or default_top_k(len(names))
    arch = Architecture(names, dim=settings.dim, function_wise=m > 1)
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    results = []
    previous: dict[str, torch.Tensor] | None = None
    candidates = all_pairs(len(names))
    for order in range(2, settings.max_order + 1):
        if len(candidates) == 0:
            log.info("order %d: no candidates left", order)
            break
        torch.manual_seed(settings.train.seed + order)  # the model's initial weights are seeded too
        index = candidates.repeat_interleave(m, dim=0)
        functions = function_ids.repeat(len(candidates))
        model = GatedInteractions(
            data.vocab_sizes,
            settings.dim,
            [(i, f) for i, f, _ in kept] + [(index, functions)],
            data.n_multi_hot,
            function_wise=m > 1,
            hidden=settings.hidden,
            alpha_init=[a for *_, a in kept] + [torch.full((len(index),), settings.alpha_init)],
            searchable=[False] * len(kept) + [True],
        )
        if previous is not None:  # warm start: trained embeddings give order-p products a usable scale
            own = model.state_dict()
            model.load_state_dict(
                {k: v for k, v in previous.items() if k in own and own[k].shape == v.shape}, strict=False
            )
        grda = GRDA(model.architecture_parameters(), **vars(settings.grda))
        results.append(train(model, data, _last_step(settings.train), device, model.weight_parameters(), grda))
        previous = {k: v.detach().clone() for k, v in model.state_dict().items()}
        alpha = model.alpha[-1].detach().cpu()
        arch = arch.merge(Architecture.from_gates(names, index, functions, alpha, settings.dim, m > 1))
        open_rows = alpha != 0
        kept.append((index[open_rows], functions[open_rows], alpha[open_rows]))
        log.info("order %d: kept %d of %d rows", order, int(open_rows.sum()), len(index))
        strength = torch.zeros(len(candidates)).index_add_(0, torch.arange(len(index)) // m, alpha.abs())
        candidates = next_order_pool(candidates, strength, len(names), top_k)
    return arch, results


@dataclass
class EmbedSearchSettings:
    """EDS: β gates per field and dimension, searched with the interactions fixed."""

    hidden: tuple[int, ...] = ()
    beta_init: float = 0.6
    grda: GRDASettings = field(default_factory=GRDASettings)
    train: TrainSettings = field(default_factory=TrainSettings)


def search_embed(
    data: PreparedData, arch: Architecture, settings: EmbedSearchSettings, device: torch.device
) -> tuple[Architecture, TrainResult]:
    """Search the embedding dimensions each field needs for ``arch``'s kept rows.

    The kept rows start from their searched α and train with Adam; β (shared by a field's
    function-wise tables) go to GRDA. A field keeps the dimensions whose β is non-zero; rows that
    touch a field left with no dimension are dropped from the returned architecture.
    """
    names = [f["name"] for f in data.fields]
    torch.manual_seed(settings.train.seed)
    model = GatedInteractions.from_architecture(
        arch,
        data.vocab_sizes,
        data.n_multi_hot,
        narrow=False,
        hidden=settings.hidden,
        embedding_gates=True,
        beta_init=settings.beta_init,
    )
    grda = GRDA(model.architecture_parameters(), **vars(settings.grda))
    result = train(model, data, _last_step(settings.train), device, model.weight_parameters(), grda)
    beta = model.beta.detach().cpu()
    positions = {name: torch.nonzero(beta[i]).flatten().tolist() for i, name in enumerate(names)}
    searched = arch.with_positions(positions)
    log.info(
        "embedding widths: %s (of %d); %d of %d interactions left",
        searched.widths,
        arch.dim,
        len(searched.interactions),
        len(arch.interactions),
    )
    return searched, result


@dataclass
class RetrainSettings:
    """The model that ships: kept rows, kept slots in narrow tables, an MLP on top."""

    hidden: tuple[int, ...] = (400, 400, 400)
    deep: Deep = "stacked"
    dropout: float = 0.0
    alpha_init: float | None = None  # None = the searched values; a number starts every kept α there
    narrow: bool = True
    train: TrainSettings = field(default_factory=TrainSettings)


def retrain_config(data: PreparedData, arch: Architecture, settings: RetrainSettings) -> dict:
    """The JSON config that builds (and, in a checkpoint, rebuilds) the retrain model."""
    kwargs = {
        "vocab_sizes": data.vocab_sizes,
        "n_multi_hot": data.n_multi_hot,
        "architecture": arch.to_dict(),
        "alpha_init": settings.alpha_init,
        "narrow": settings.narrow,
        "hidden": list(settings.hidden),
        "deep": settings.deep,
        "dropout": settings.dropout,
    }
    return {"model": "gated", "kwargs": kwargs}


def retrain(
    data: PreparedData, arch: Architecture, settings: RetrainSettings, device: torch.device
) -> tuple[GatedInteractions, TrainResult, dict]:
    """Train the final model of ``arch`` from scratch with Adam on every parameter.

    Returns the model, its training result and the config to checkpoint it with.
    """
    config = retrain_config(data, arch, settings)
    torch.manual_seed(settings.train.seed)
    model = gated_from_config(**config["kwargs"])
    result = train(model, data, settings.train, device)
    return model, result, config
