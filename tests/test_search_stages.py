"""search_interaction end to end on planted data: Algorithm 1 finds a planted 3-way term at order 3,
and IFS keeps functions per pair; the result is an Architecture a later stage can rebuild from."""

import pytest
import torch

from aim.config import load_params
from aim.data.arrays import PreparedData
from aim.pipeline.prepare import run_prepare
from aim.search.stages import GRDASettings, InteractionSearchSettings, search_interaction
from aim.training.loop import TrainSettings
from tests.conftest import write_params


@pytest.fixture(scope="module")
def planted_triple(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triple")
    planted = {"rows": 60_000, "values": 10, "triple": [2, 3, 5], "triple_scale": 2.0}
    params = load_params(write_params(folder, {"source": "planted", "planted": planted}, seed=0))
    run_prepare(params)
    return PreparedData(params.path("data/prepared"))


def _settings(seed, functions=("inner",), max_order=3, c=0.1):
    train = TrainSettings(epochs=4, batch_size=512, lr=3e-3, patience=4, seed=seed)
    return InteractionSearchSettings(
        dim=8, functions=functions, max_order=max_order, grda=GRDASettings(c=c), train=train
    )


def test_planted_triple_is_found_at_order_3(planted_triple):
    found = 0
    for seed in range(3):
        arch, results = search_interaction(planted_triple, _settings(seed), torch.device("cpu"))
        assert len(results) == 2 and results[1].best_auc >= results[0].best_auc - 0.002
        triples = sorted(
            ((sum(abs(a) for a in i.functions.values()), sorted(i.fields)) for i in arch.interactions if i.order == 3),
            reverse=True,
        )
        found += bool(triples) and triples[0][1] == ["f2", "f3", "f5"]
        pairs = sorted(((abs(i.functions["inner"]), i.fields) for i in arch.interactions if i.order == 2), reverse=True)
        assert {tuple(f) for _, f in pairs[:3]} == {("f0", "f1"), ("f2", "f5"), ("f3", "f4")}
    assert found >= 2


def test_ifs_search_keeps_functions_per_pair_and_rebuilds(planted_triple):
    every = ("inner", "vector_kernel", "scalar_kernel", "outer")
    arch, _ = search_interaction(planted_triple, _settings(0, every, max_order=2, c=0.6), torch.device("cpu"))
    kept = {tuple(i.fields): set(i.functions) for i in arch.interactions}
    assert {("f0", "f1"), ("f2", "f5"), ("f3", "f4")} <= set(kept)
    assert all(fns and fns <= set(every) for fns in kept.values())
    index, functions, alpha = arch.rows(2)
    assert len(index) == sum(len(f) for f in kept.values()) and (alpha != 0).all()
    assert len(kept) <= 6  # most of the 15 pairs were dropped
