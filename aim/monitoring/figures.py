"""Per-arm figures of one window in numpy/scikit-learn: the numbers ``monitor.json`` reports.

AUC and log loss are scikit-learn's (log loss with probabilities clipped to [1e-7, 1 − 1e-7],
as in training); CTR is the label mean; CTR@k the label mean over rows ranked above ``top_k``
in their request (``position < top_k``); calibration is the ratio of the mean score to the CTR
(1 = calibrated in the large) and the expected calibration error over ten equal-count bins of
the score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from aim.errors import DataError
from aim.monitoring.windows import USER

EPS = 1e-7
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ArmFigures:
    """Quality of one arm on one window."""

    rows: int
    requests: int
    users: int
    models: list[str]
    auc: float
    logloss: float
    ctr: float
    mean_score: float
    calibration_ratio: float | None
    ece: float
    ctr_at_k: float | None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Σ_b (n_b / n) |mean score_b − mean label_b| over ``bins`` equal-count bins of the score."""
    order = np.argsort(scores, kind="stable")
    parts = [p for p in np.array_split(order, min(bins, len(order))) if len(p)]
    return float(sum(len(p) * abs(scores[p].mean() - labels[p].mean()) for p in parts) / len(order))


def arm_figures(rows: pd.DataFrame, top_k: int, where: str) -> ArmFigures:
    """Figures of one arm's rows; ``where`` names the window and arm in errors."""
    labels = rows["label"].to_numpy()
    scores = rows["score"].to_numpy(dtype=np.float64)
    if len(labels) == 0:
        raise DataError(f"{where} has no rows: check serve.treatment_share and the replay size")
    if labels.min() == labels.max():
        raise DataError(f"{where} holds only one class ({len(labels)} rows), so AUC is undefined: replay more requests")
    ctr = float(labels.mean())
    mean_score = float(scores.mean())
    top = rows["position"].to_numpy() < top_k
    models = sorted({f"{n}@{v}" for n, v in zip(rows["model_name"], rows["model_version"], strict=True)})
    return ArmFigures(
        rows=int(len(labels)),
        requests=int(rows["request_id"].nunique()),
        users=int(rows[USER].nunique()),
        models=models,
        auc=float(roc_auc_score(labels, scores)),
        logloss=float(log_loss(labels, np.clip(scores, EPS, 1 - EPS), labels=[0, 1])),
        ctr=ctr,
        mean_score=mean_score,
        calibration_ratio=mean_score / ctr if ctr > 0 else None,
        ece=expected_calibration_error(labels, scores),
        ctr_at_k=float(labels[top].mean()) if top.any() else None,
    )
