"""Acceptance of the interaction search on the AutoFIS planted set (m = 6, N = 60, C = {(0,1),(2,5),(3,4)}):
the planted pairs get the three largest |α| and most other gates are exactly zero, on at least 4 of 5 seeds."""

import pytest
import torch

from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.models.gated import GatedInteractions
from aim.nn.interactions import INNER
from aim.pipeline.prepare import run_prepare
from aim.search.candidates import all_pairs
from aim.search.grda import GRDA
from aim.training.loop import TrainSettings, train
from tests.conftest import write_params


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted60")
    params = load_params(write_params(folder, {"source": "planted", "planted": {"rows": 50_000}}, seed=0))
    run_prepare(params)
    return PreparedData(params.path("data/prepared"))


def _search(data, seed):
    pairs = all_pairs(6)
    torch.manual_seed(seed)
    model = GatedInteractions([f["vocab_size"] for f in data.fields], 8, [(pairs, torch.full((len(pairs),), INNER))])
    grda = GRDA(model.architecture_parameters(), lr=0.1, c=0.3, mu=0.8)
    settings = TrainSettings(epochs=4, batch_size=512, lr=3e-3, patience=4, seed=seed)
    result = train(
        model, data, settings, torch.device("cpu"), parameters=model.weight_parameters(), extra_optimizer=grda
    )
    return pairs.tolist(), model.alpha[0].detach().abs(), result


def test_planted_pairs_have_the_largest_gates_and_the_rest_close(planted):
    wins = 0
    for seed in range(5):
        pairs, alpha, result = _search(planted, seed)
        planted_rows = {pairs.index(p) for p in ([0, 1], [2, 5], [3, 4])}
        top3 = set(torch.topk(alpha, 3).indices.tolist())
        others = [r for r in range(len(pairs)) if r not in planted_rows]
        zeros = int((alpha[others] == 0).sum())
        wins += top3 == planted_rows and zeros >= len(others) / 2 and bool((alpha[list(planted_rows)] > 0).all())
        assert result.best_auc > 0.75
    assert wins >= 4


def test_architecture_and_weight_parameters_split_cleanly(planted):
    pairs = all_pairs(6)
    model = GatedInteractions(
        [f["vocab_size"] for f in planted.fields], 4, [(pairs, torch.full((15,), INNER))], hidden=(8,)
    )
    arch, weights = model.architecture_parameters(), model.weight_parameters()
    assert len(arch) == 1 and arch[0].shape == (15,)
    assert {id(p) for p in arch}.isdisjoint(id(p) for p in weights)
    assert len(arch) + len(weights) == len(list(model.parameters()))
