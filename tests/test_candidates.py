from itertools import combinations

import torch

from aim.search.candidates import all_pairs, default_top_k, next_order_pool


def test_all_pairs_is_every_pair_once():
    pairs = all_pairs(5)
    assert pairs.tolist() == [list(c) for c in combinations(range(5), 2)]


def test_next_order_pool_follows_algorithm_1():
    selected = torch.tensor([[0, 1], [2, 5], [3, 4], [1, 2]])
    alpha = torch.tensor([0.9, -0.8, 0.0, 0.1])  # (3, 4) was dropped by the search
    pool = next_order_pool(selected, alpha, n_fields=6, k=2)
    expected = sorted({tuple(sorted((*top, f))) for top in [(0, 1), (2, 5)] for f in range(6) if f not in top})
    assert [tuple(row) for row in pool.tolist()] == expected
    assert pool.shape == (len(expected), 3)


def test_pool_deduplicates_and_grows_to_order_four():
    selected = torch.tensor([[0, 1, 2], [0, 1, 3]])
    pool = next_order_pool(selected, torch.tensor([1.0, 1.0]), n_fields=4, k=2)
    assert pool.tolist() == [[0, 1, 2, 3]]  # both tops grow into the same 4-way interaction


def test_pool_is_linear_in_fields_not_combinatorial():
    n = 40
    pairs = all_pairs(n)
    alpha = torch.linspace(1, 0.01, len(pairs))
    pool = next_order_pool(pairs, alpha, n_fields=n, k=default_top_k(n))
    assert default_top_k(n) == 20
    assert len(pool) <= 20 * (n - 2) < len(list(combinations(range(n), 3)))
    assert (pool[:, :-1] < pool[:, 1:]).all()  # sorted, distinct fields


def test_nothing_selected_gives_an_empty_pool():
    pool = next_order_pool(torch.tensor([[0, 1]]), torch.tensor([0.0]), n_fields=3, k=1)
    assert pool.shape == (0, 3)
