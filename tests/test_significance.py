"""Paired AUC tests: DeLong (midranks) against sklearn, a brute-force DeLong and the bootstrap."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from aim.errors import DataError, ModelError
from aim.training.significance import bootstrap_test, compare_aucs, delong_covariance, delong_test


def _correlated(rows: int, seed: int, gap: float = 0.2, decimals: int | None = 1):
    """Labels and two correlated scores (shared noise), the first better by ``gap``; rounded -> ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(np.uint8)
    shared = rng.normal(size=rows)
    a = (0.6 + gap) * y + shared + 0.5 * rng.normal(size=rows)
    b = 0.6 * y + shared + 0.5 * rng.normal(size=rows)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    return y, a, b


def _brute_force_delong(y, scores):
    """DeLong's covariance straight from the definition: O(m n) pairwise comparisons."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]


def test_delong_aucs_match_sklearn_and_the_brute_force_covariance_with_ties():
    y, a, b = _correlated(600, seed=1)
    assert len(np.unique(a)) < 200  # rounding made ties
    aucs, cov = delong_covariance(y, np.stack([a, b]))
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)], abs=1e-12)
    brute_aucs, brute_cov = _brute_force_delong(y, np.stack([a, b]))
    assert aucs == pytest.approx(brute_aucs, abs=1e-12)
    assert cov == pytest.approx(brute_cov, rel=1e-9)
    result = delong_test(y, a, b)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert result.se == pytest.approx(np.sqrt(var), rel=1e-9)
    assert result.delta == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)


def test_delong_standard_error_agrees_with_the_paired_bootstrap():
    y, a, b = _correlated(4000, seed=2, gap=0.1)
    delong = delong_test(y, a, b)
    boot = bootstrap_test(y, a, b, samples=2000, seed=3)
    assert boot.delta == pytest.approx(delong.delta, abs=1e-12)
    assert boot.auc_challenger == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert boot.auc_control == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert boot.se == pytest.approx(delong.se, rel=0.1)
    lo, hi = boot.ci
    assert lo < boot.delta < hi
    assert (hi - lo) == pytest.approx(2 * norm.ppf(0.975) * delong.se, rel=0.15)
    assert boot.p_value == pytest.approx(delong.p_value, rel=0.5, abs=1e-3)


def test_delong_interval_and_one_sided_p_follow_the_normal_approximation():
    y, a, b = _correlated(2000, seed=4, gap=0.05)
    result = delong_test(y, a, b, alpha=0.1, min_delta=0.01)
    z = norm.ppf(0.95)
    assert result.ci == pytest.approx((result.delta - z * result.se, result.delta + z * result.se))
    assert result.p_value == pytest.approx(norm.sf((result.delta - 0.01) / result.se))
    swapped = delong_test(y, b, a)
    assert swapped.delta == pytest.approx(-delong_test(y, a, b).delta)
    assert swapped.p_value > 0.5  # the worse model is never "better"


@pytest.mark.parametrize("test", ["delong", "bootstrap"])
def test_identical_predictions_are_a_tie_and_never_significant(test):
    y, a, _ = _correlated(1000, seed=5)
    result = compare_aucs(y, a, a.copy(), test=test, samples=200, seed=1)
    assert result.delta == 0.0 and result.se == 0.0
    assert result.p_value == 1.0 and not result.significant
    assert result.ci == (0.0, 0.0)
    # same ranking, different values: still a tie
    monotone = compare_aucs(y, a, np.exp(a), test=test, samples=200, seed=1)
    assert monotone.delta == 0.0 and monotone.p_value == 1.0


@pytest.mark.parametrize("test", ["delong", "bootstrap"])
def test_a_much_better_model_is_highly_significant(test):
    rng = np.random.default_rng(6)
    y = (rng.random(3000) < 0.4).astype(np.uint8)
    good = 0.7 * y + 0.3 * rng.random(3000)
    coin = rng.random(3000)
    result = compare_aucs(y, good, coin, test=test, samples=300, seed=2)
    assert result.delta > 0.4 and result.p_value < 1e-6 and result.significant
    assert result.ci[0] > 0.3


def test_min_delta_above_the_gain_makes_it_not_significant():
    y, a, b = _correlated(3000, seed=7, gap=0.2)
    plain = delong_test(y, a, b)
    assert plain.significant
    demanding = delong_test(y, a, b, min_delta=plain.delta + 0.01)
    assert demanding.p_value > 0.5 and not demanding.significant


def test_bootstrap_is_seeded_and_chunking_does_not_change_it():
    y, a, b = _correlated(1500, seed=8, gap=0.1)
    one = bootstrap_test(y, a, b, samples=250, seed=11)
    chunked = bootstrap_test(y, a, b, samples=250, seed=11, chunk_elements=1500 * 7)
    other = bootstrap_test(y, a, b, samples=250, seed=12)
    assert one == chunked
    assert other.se != one.se


def test_bad_inputs_say_what_to_do():
    y, a, b = _correlated(100, seed=9)
    with pytest.raises(ModelError, match="rerun `aim evaluate`"):
        delong_test(y, a[:-1], b)
    with pytest.raises(ModelError, match="NaN"):
        delong_test(y, np.where(np.arange(100) == 3, np.nan, a), b)
    with pytest.raises(DataError, match="only one class"):
        delong_test(np.ones(100), a, b)
    with pytest.raises(DataError, match="0/1"):
        delong_test(np.full(100, 2), a, b)
