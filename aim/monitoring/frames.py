"""pandas frames and Evidently datasets: the training reference, the fields, each arm, the A/B pair.

Every Evidently dataset gets an explicit :class:`~evidently.DataDefinition` (no type inference):
model fields are **categorical** (encoded ids, bucketed numeric fields included), scores and
labels numerical, and the classification task maps ``label`` to the ``score`` probabilities.
Per-arm columns carry the arm in their names (``score_control``, ``label_treatment``, ...) and
the task is named after the arm, so the metrics of the two arms have distinct configurations,
hence distinct ids in the combined snapshot and distinct series on the dashboard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset

from aim.data.arrays import PreparedData
from aim.errors import DataError


def single_fields(prepared: PreparedData) -> list[str]:
    """Names of the single-valued model fields, in model order (the columns of ``fields.npy``)."""
    return [f["name"] for f in prepared.fields if f["kind"] != "multi_hot"]


def reference_frame(prepared: PreparedData, rows: int, seed: int) -> pd.DataFrame:
    """A seeded sample of at most ``rows`` rows of the training split's field ids (int64)."""
    train = prepared.split("train")
    n = len(train)
    if n == 0:
        raise DataError(f"the training split under {prepared.folder} is empty: rerun `aim prepare`")
    index = np.sort(np.random.default_rng(seed).choice(n, size=min(rows, n), replace=False))
    ids = np.asarray(train.fields[index], dtype=np.int64)
    return pd.DataFrame(ids, columns=single_fields(prepared))


def _definition(
    categorical: list[str], numerical: list[str], classification: list[BinaryClassification] | None = None
) -> DataDefinition:
    """A definition with every column list given, so Evidently infers nothing."""
    return DataDefinition(
        categorical_columns=categorical,
        numerical_columns=numerical,
        text_columns=[],
        datetime_columns=[],
        list_columns=[],
        unknown_columns=[],
        classification=classification,
    )


def fields_dataset(frame: pd.DataFrame, fields: list[str]) -> Dataset:
    """The model fields of ``frame`` as categorical columns (for drift)."""
    return Dataset.from_pandas(frame[fields].reset_index(drop=True), data_definition=_definition(fields, []))


def arm_columns(arm: str, top_k: int) -> dict[str, str]:
    """Column names of one arm's dataset: ``label``, ``score`` and ``top_k_click``."""
    return {"label": f"label_{arm}", "score": f"score_{arm}", "top_k_click": f"click_top{top_k}_{arm}"}


def arm_dataset(rows: pd.DataFrame, arm: str, top_k: int) -> Dataset:
    """One arm's rows: label, score, and the label of its top-k ranked rows (NaN below rank k).

    The classification task is named ``arm``; Evidently's mean of the top-k column skips the
    NaN rows, so it is the CTR of the top-k items.
    """
    names = arm_columns(arm, top_k)
    frame = pd.DataFrame(
        {
            names["label"]: rows["label"].to_numpy(),
            names["score"]: rows["score"].to_numpy(),
            names["top_k_click"]: np.where(rows["position"].to_numpy() < top_k, rows["label"].to_numpy(), np.nan),
        }
    )
    task = BinaryClassification(name=arm, target=names["label"], prediction_probas=names["score"])
    return Dataset.from_pandas(frame, data_definition=_definition([], list(names.values()), [task]))


def scored_dataset(rows: pd.DataFrame) -> Dataset:
    """``label`` and ``score`` of some rows with the default classification task (the A/B pair)."""
    frame = rows[["label", "score"]].reset_index(drop=True)
    task = BinaryClassification(target="label", prediction_probas="score")
    return Dataset.from_pandas(frame, data_definition=_definition([], ["label", "score"], [task]))


def replicates_dataset(replicates: dict[str, np.ndarray]) -> Dataset:
    """Bootstrap replicates, one numerical column per difference (rows = resamples)."""
    frame = pd.DataFrame(replicates)
    return Dataset.from_pandas(frame, data_definition=_definition([], list(frame.columns)))
