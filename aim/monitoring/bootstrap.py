"""Unpaired cluster bootstrap of the challenger − control differences in AUC and log loss.

**Unpaired.** The arms serve different users (arm = a stable hash of the user id), so no row was
scored by both models, unlike the promotion gate's paired tests on the shared test split
(:mod:`aim.training.significance`). The two arms are resampled independently and each replicate
is Δ = metric(treatment resample) − metric(control resample).

**Users, not rows.** The user is the unit the arms are assigned by, and the rows of one user
(several requests, several items per request) are correlated: resampling rows as if independent
would make the interval too narrow. A resample draws an arm's users with replacement and
weights every row by how often its user was drawn (the cluster bootstrap); with one row per
user it is the plain row bootstrap.

**Vectorised.** An arm's negatives are sorted once and each positive's place among them is
found once; a resample is then one weighted cumulative sum and a few gathers, for all the
resamples of a chunk at once:
AUC = Σ_pos w_i (W_below(i) + W_tied(i) / 2) / (W_pos W_neg), log loss = Σ w_i ℓ_i / Σ w_i.
A resample in which an arm drew no positive or no negative has no AUC: its replicate is NaN
and left out of the quantiles (:attr:`Interval.valid` counts the others).

The interval is the percentile interval, the (1 − level)/2 and (1 + level)/2 quantiles of the
replicates with linear interpolation (numpy's default and pandas', which Evidently's
``QuantileValue`` uses, so Evidently reproduces the bounds from the replicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aim.errors import ConfigError
from aim.monitoring.windows import USER

CHUNK_ELEMENTS = 1 << 21  # row weights per chunk (16 MiB per float64 array, a few alive)
EPS = 1e-7


class _ArmResampler:
    """AUC and log loss of one arm under user resamples, from one sort."""

    def __init__(self, rows: pd.DataFrame):
        y = rows["label"].to_numpy().astype(bool)
        p = np.clip(rows["score"].to_numpy(dtype=np.float64), EPS, 1 - EPS)
        self.user_of_row, users = pd.factorize(rows[USER])
        self.users = len(users)
        self.pos = np.flatnonzero(y)
        neg = np.flatnonzero(~y)
        order = np.argsort(p[neg], kind="stable")
        self.neg_sorted = neg[order]
        ordered = p[self.neg_sorted]
        self.left = np.searchsorted(ordered, p[self.pos], side="left")
        self.right = np.searchsorted(ordered, p[self.pos], side="right")
        self.loss = -np.where(y, np.log(p), np.log1p(-p))

    def weights(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Row weights [draws, rows]: how often each row's user was drawn in each resample."""
        picks = rng.integers(0, self.users, size=(draws, self.users)) + (np.arange(draws) * self.users)[:, None]
        counts = np.bincount(picks.ravel(), minlength=draws * self.users).reshape(draws, self.users)
        return counts[:, self.user_of_row].astype(np.float64)

    def metrics(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUC and log loss [draws] under row weights ``w`` [draws, rows]."""
        cum = np.zeros((len(w), len(self.neg_sorted) + 1))
        np.cumsum(w[:, self.neg_sorted], axis=1, out=cum[:, 1:])
        below = np.take(cum, self.left, axis=1)
        tied = np.take(cum, self.right, axis=1) - below
        w_pos = w[:, self.pos]
        pairs = w_pos.sum(axis=1) * cum[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where(pairs > 0, (w_pos * (below + 0.5 * tied)).sum(axis=1) / pairs, np.nan)
        logloss = (w @ self.loss) / w.sum(axis=1)
        return auc, logloss


def bootstrap_ab(
    control: pd.DataFrame,
    treatment: pd.DataFrame,
    samples: int,
    seed: int | list[int],
    chunk_elements: int = CHUNK_ELEMENTS,
) -> dict[str, np.ndarray]:
    """Replicates ``{"delta_auc": [samples], "delta_logloss": [samples]}`` (treatment − control).

    ``control`` and ``treatment`` hold :data:`~aim.monitoring.windows.USER`, ``label`` and ``score``.
    Independent streams per arm: the same seed gives the same replicates whatever the chunk size.
    """
    if samples < 2:
        raise ConfigError(f"the bootstrap needs at least 2 samples, got {samples}: raise monitor.bootstrap_samples")
    arms = _ArmResampler(control), _ArmResampler(treatment)
    streams = np.random.default_rng(seed).spawn(2)
    chunk = max(1, chunk_elements // max(len(control), len(treatment)))
    auc, logloss = [], []
    for start in range(0, samples, chunk):
        draws = min(chunk, samples - start)
        (auc_c, ll_c), (auc_t, ll_t) = (
            arm.metrics(arm.weights(rng, draws)) for arm, rng in zip(arms, streams, strict=True)
        )
        auc.append(auc_t - auc_c)
        logloss.append(ll_t - ll_c)
    return {"delta_auc": np.concatenate(auc), "delta_logloss": np.concatenate(logloss)}


@dataclass(frozen=True)
class Interval:
    """An observed difference with its percentile bootstrap interval."""

    delta: float
    ci: tuple[float, float]
    level: float
    valid: int

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"delta": self.delta, "ci": list(self.ci), "level": self.level, "valid_samples": self.valid}


def quantile_bounds(level: float) -> tuple[float, float]:
    """The quantiles of a two-sided ``level`` percentile interval (rounded: 0.025, not 0.025000000000000022)."""
    return round((1 - level) / 2, 12), round((1 + level) / 2, 12)


def interval(observed: float, replicates: np.ndarray, level: float) -> Interval:
    """The percentile interval of ``replicates`` (NaN replicates left out) around ``observed``."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return Interval(observed, (float("nan"), float("nan")), level, 0)
    lo, hi = np.quantile(finite, quantile_bounds(level))
    return Interval(observed, (float(lo), float(hi)), level, int(len(finite)))
