"""Paired significance tests for the AUC gain of a challenger over a control on the same rows.

Both tests answer the promotion gate's question, one-sided: is the challenger's AUC higher than
the control's by more than ``min_delta``? With Δ = AUC(challenger) − AUC(control):

- H0: Δ <= min_delta, H1: Δ > min_delta; ``p_value`` = P(Z >= (Δ − min_delta) / se) under a
  normal approximation of Δ. A small p means the gain over ``min_delta`` is unlikely to be noise.
- ``ci`` is the two-sided (1 − alpha) confidence interval for Δ, reported for reading (it is
  wider than the one-sided bound the gate uses: ``ci[0] > min_delta`` implies ``p < alpha / 2``).
- When se is exactly 0 (identical scores, or identical rankings) nothing varies: p is 1 when
  Δ <= min_delta (not significant) and 0 when Δ > min_delta.

:func:`delong_test` uses DeLong's asymptotic variance of correlated AUCs, computed with the
O(n log n) midrank algorithm of Sun & Xu (2014); :func:`bootstrap_test` resamples rows (with
replacement, within each class so that both models always see the same positive and negative
counts, like DeLong's variance) and takes Δ's standard error and percentile interval from the
resamples. It sorts each model's scores once and then costs O(samples × rows) with no Python
loop over rows or resamples inside a chunk: DeLong is the fast default, the bootstrap a check
that needs no normality of the AUC estimates' components.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm, rankdata

from aim.errors import ConfigError, DataError, ModelError

TestName = Literal["delong", "bootstrap"]
CHUNK_ELEMENTS = 1 << 22  # resamples x rows evaluated at once (32 MiB per float64 array, a few alive)


@dataclass(frozen=True)
class AUCComparison:
    """The outcome of a paired AUC test (challenger minus control)."""

    test: str
    auc_challenger: float
    auc_control: float
    delta: float
    se: float
    ci: tuple[float, float]
    p_value: float
    alpha: float
    min_delta: float
    positives: int
    negatives: int

    @property
    def significant(self) -> bool:
        """True when the gain exceeds ``min_delta`` and the one-sided p-value is below ``alpha``."""
        return self.delta > self.min_delta and self.p_value < self.alpha

    def to_dict(self) -> dict:
        """JSON-ready fields (the interval as a list)."""
        out = asdict(self)
        out["ci"] = list(self.ci)
        return out


def _check(labels: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """0/1 labels with both classes and finite score vectors of the same length, as float64."""
    y = np.asarray(labels).ravel()
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0/1 clicks; check the test split of the prepared data")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise DataError("the test split holds only one class, so AUC is undefined: prepare more rows")
    out = []
    for s in scores:
        s = np.asarray(s, dtype=np.float64).ravel()
        if len(s) != len(y):
            raise ModelError(f"{len(s)} predictions for {len(y)} labels: rerun `aim evaluate` on this data")
        if not np.isfinite(s).all():
            raise ModelError("predictions contain NaN or infinite values: retrain or re-evaluate the model")
        out.append(s)
    return y, out


def _one_sided_p(delta: float, se: float, min_delta: float) -> float:
    """P(Z >= (delta - min_delta) / se); degenerate se = 0 gives 1 (not significant) or 0."""
    if se > 0:
        return float(norm.sf((delta - min_delta) / se))
    return 0.0 if delta > min_delta else 1.0


def delong_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong structural components of ``scores`` [k, n] (one row per model).

    Returns ``(aucs [k], v10 [k, m], v01 [k, n_neg])``: for each positive, the share of negatives
    it outranks (ties count half), and for each negative, the share of positives outranking it.
    Midranks make it O(n log n) per model (Sun & Xu 2014).
    """
    y = np.asarray(labels).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    rank_pos = rankdata(pos, axis=1)  # midranks within the positives
    rank_neg = rankdata(neg, axis=1)
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    aucs = v10.mean(axis=1)
    return aucs, v10, v01


def delong_covariance(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs [k] and their DeLong covariance matrix [k, k] for scores [k, n] on the same rows."""
    aucs, v10, v01 = delong_components(labels, scores)
    cov = np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]
    return aucs, cov


def delong_test(
    labels: np.ndarray,
    challenger: np.ndarray,
    control: np.ndarray,
    *,
    min_delta: float = 0.0,
    alpha: float = 0.05,
) -> AUCComparison:
    """DeLong's paired test of AUC(challenger) − AUC(control) > ``min_delta`` (see module doc)."""
    y, (a, b) = _check(labels, challenger, control)
    aucs, v10, v01 = delong_components(y, np.stack([a, b]))
    # variance of the difference from the differenced components: exactly 0 for identical
    # scores and never negative, unlike var_a + var_b - 2 cov in floating point
    d10, d01 = v10[0] - v10[1], v01[0] - v01[1]
    var = d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01)
    delta, se = float(aucs[0] - aucs[1]), float(np.sqrt(max(var, 0.0)))
    z = float(norm.ppf(1 - alpha / 2))
    return AUCComparison(
        test="delong",
        auc_challenger=float(aucs[0]),
        auc_control=float(aucs[1]),
        delta=delta,
        se=se,
        ci=(delta - z * se, delta + z * se),
        p_value=_one_sided_p(delta, se, min_delta),
        alpha=alpha,
        min_delta=min_delta,
        positives=int(y.sum()),
        negatives=int((~y).sum()),
    )


class _ResampledAUC:
    """AUC of one score vector under many resamples given as per-row draw counts, from one sort.

    Negatives are sorted once; each positive's place among them (below, tied) is found once with
    ``searchsorted``. A resample then costs one cumulative sum of the negatives' counts and two
    lookups per positive: AUC = Σ_i c_i (N_below(i) + N_tied(i) / 2) / (m n).
    """

    def __init__(self, pos_scores: np.ndarray, neg_scores: np.ndarray):
        self.neg_order = np.argsort(neg_scores, kind="stable")
        ordered = neg_scores[self.neg_order]
        self.left = np.searchsorted(ordered, pos_scores, side="left")
        self.right = np.searchsorted(ordered, pos_scores, side="right")

    def __call__(self, pos_counts: np.ndarray, neg_counts: np.ndarray) -> np.ndarray:
        """AUCs for counts [b, m] of the positives and [b, n] of the negatives, one per resample."""
        m, n = pos_counts.shape[1], neg_counts.shape[1]
        cum = np.zeros((len(neg_counts), n + 1))
        np.cumsum(neg_counts[:, self.neg_order], axis=1, out=cum[:, 1:])
        below = np.take(cum, self.left, axis=1)
        tied = np.take(cum, self.right, axis=1) - below
        return (pos_counts * (below + 0.5 * tied)).sum(axis=1) / (m * n)


def _resample_counts(rng: np.random.Generator, size: int, draws: int) -> np.ndarray:
    """How often each of ``size`` rows is drawn in ``draws`` resamples of ``size`` rows each."""
    picks = rng.integers(0, size, size=(draws, size)) + (np.arange(draws) * size)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * size).reshape(draws, size)


def bootstrap_test(
    labels: np.ndarray,
    challenger: np.ndarray,
    control: np.ndarray,
    *,
    min_delta: float = 0.0,
    alpha: float = 0.05,
    samples: int = 1000,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> AUCComparison:
    """Paired, class-stratified bootstrap of AUC(challenger) − AUC(control) (see module doc).

    ``se`` is the standard deviation of the resampled differences, ``ci`` their (alpha/2,
    1 − alpha/2) percentiles and ``p_value`` the normal one-sided p with that se (as pROC does),
    so very clear gains get p-values below 1/samples. Resamples run in chunks of about
    ``chunk_elements`` weights; the same seed gives the same result.
    """
    if samples < 2:
        raise ConfigError(f"the bootstrap needs at least 2 samples, got {samples}: raise promote.bootstrap_samples")
    y, (a, b) = _check(labels, challenger, control)
    m, n = int(y.sum()), int((~y).sum())
    auc_a, auc_b = _ResampledAUC(a[y], a[~y]), _ResampledAUC(b[y], b[~y])
    # one stream per class: the draws, so the result, do not depend on the chunk size
    rng_pos, rng_neg = np.random.default_rng(seed).spawn(2)
    chunk = max(1, chunk_elements // len(y))
    deltas = []
    for start in range(0, samples, chunk):
        draws = min(chunk, samples - start)
        pos_counts, neg_counts = _resample_counts(rng_pos, m, draws), _resample_counts(rng_neg, n, draws)
        deltas.append(auc_a(pos_counts, neg_counts) - auc_b(pos_counts, neg_counts))
    boot = np.concatenate(deltas)
    ones_pos, ones_neg = np.ones((1, m)), np.ones((1, n))
    observed_a, observed_b = float(auc_a(ones_pos, ones_neg)[0]), float(auc_b(ones_pos, ones_neg)[0])
    delta = observed_a - observed_b
    se = float(boot.std(ddof=1))
    if se < 1e-12 * max(1.0, abs(delta)):  # rounding noise only: nothing varies
        se = 0.0
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return AUCComparison(
        test="bootstrap",
        auc_challenger=observed_a,
        auc_control=observed_b,
        delta=delta,
        se=se,
        ci=(float(lo), float(hi)),
        p_value=_one_sided_p(delta, se, min_delta),
        alpha=alpha,
        min_delta=min_delta,
        positives=m,
        negatives=n,
    )


def compare_aucs(
    labels: np.ndarray,
    challenger: np.ndarray,
    control: np.ndarray,
    *,
    test: TestName = "delong",
    min_delta: float = 0.0,
    alpha: float = 0.05,
    samples: int = 1000,
    seed: int = 0,
) -> AUCComparison:
    """Run the named paired test (``delong`` or ``bootstrap``)."""
    if test == "delong":
        return delong_test(labels, challenger, control, min_delta=min_delta, alpha=alpha)
    if test == "bootstrap":
        return bootstrap_test(labels, challenger, control, min_delta=min_delta, alpha=alpha, samples=samples, seed=seed)
    raise ConfigError(f"unknown significance test '{test}': set promote.test to delong or bootstrap")
