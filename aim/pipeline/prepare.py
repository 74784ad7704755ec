"""Stage ``prepare``: raw source -> warehouse + prepared, model-ready dataset."""

from __future__ import annotations

import json

from aim.config import Params
from aim.data.prepare import prepare_dataset

METRICS_FILE = "prepare.json"


def run_prepare(params: Params) -> dict:
    """Prepare the configured source into ``data.output_dir`` and ``data.warehouse``.

    Also writes the headline figures to ``<metrics>/prepare.json`` for ``dvc metrics show``.
    """
    summary = prepare_dataset(params, params.path(params.data.output_dir), params.path(params.data.warehouse))
    metrics = {
        "rows": summary["rows"],
        "positive_rate": summary["positive_rate"],
        "quarantined_rows": summary["quarantined_rows"],
    }
    path = params.path(params.metrics) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return summary
