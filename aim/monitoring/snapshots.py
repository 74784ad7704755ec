"""Reading Evidently snapshots (metric values, test verdicts) and joining several into one.

An Evidently report compares one current dataset with at most one reference. A window needs
four such pairs (window vs training, each arm alone, treatment vs control, the bootstrap
replicates), so it runs four reports and :func:`combine` joins their results into one snapshot:
the metric results (keyed by metric id, which is a fingerprint of the metric's configuration,
so the parts must not share a configuration), the widgets in order, and one test summary over
all their tests. It goes through Evidently's own serialisation model (``SnapshotModel``), so
the joined snapshot saves as HTML, loads in ``evidently ui`` and feeds dashboard panels like any
other run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evidently.core.metric_types import metric_tests_widget
from evidently.core.report import Snapshot, metric_tests_stats
from evidently.core.serialization import ReportModel, SnapshotModel

PASSED = "SUCCESS"


def _type_matches(params: dict, metric_type: str) -> bool:
    return str(params.get("type", "")).endswith(f":{metric_type}")


def _status(test: dict) -> str:
    status = test.get("status")
    return str(getattr(status, "value", status))


class SnapshotView:
    """The metrics and tests of a snapshot as plain dicts (``Snapshot.dict()``), with lookups."""

    def __init__(self, snapshot: Snapshot):
        data = snapshot.dict()
        self.metrics: list[dict[str, Any]] = data["metrics"]
        self.tests: list[dict[str, Any]] = data["tests"]

    def metric(self, metric_type: str, **params: Any) -> dict[str, Any]:
        """The one metric of ``metric_type`` (e.g. ``"RocAuc"``) whose configuration has ``params``."""
        found = [
            m
            for m in self.metrics
            if _type_matches(m["config"], metric_type) and all(m["config"].get(k) == v for k, v in params.items())
        ]
        if len(found) != 1:
            raise LookupError(f"expected one {metric_type} metric with {params}, found {len(found)}")
        return found[0]

    def value(self, metric_type: str, **params: Any) -> Any:
        """The value of :meth:`metric`."""
        return self.metric(metric_type, **params)["value"]

    def tests_of(self, metric_type: str, **params: Any) -> list[dict[str, Any]]:
        """The tests bound to metrics of ``metric_type`` whose configuration has ``params``."""
        out = []
        for test in self.tests:
            config = test["metric_config"]["params"]
            if _type_matches(config, metric_type) and all(config.get(k) == v for k, v in params.items()):
                out.append(test)
        return out

    def verdict(self, metric_type: str, **params: Any) -> dict[str, Any]:
        """The single test of one metric: name, description, status and whether it passed."""
        tests = self.tests_of(metric_type, **params)
        if len(tests) != 1:
            raise LookupError(f"expected one test on {metric_type} with {params}, found {len(tests)}")
        test = tests[0]
        return {
            "test": test["name"],
            "description": test["description"],
            "status": _status(test),
            "passed": _status(test) == PASSED,
        }

    def failed_columns(self, metric_type: str) -> list[str]:
        """Columns whose test on a per-column metric of ``metric_type`` did not pass."""
        return [t["metric_config"]["params"]["column"] for t in self.tests_of(metric_type) if _status(t) != PASSED]


def combine(
    parts: list[Snapshot], *, name: str, timestamp: datetime, metadata: dict[str, str], tags: list[str]
) -> Snapshot:
    """One snapshot holding the metrics, widgets and tests of ``parts``, in order."""
    results: dict = {}
    top_level: list = []
    widgets: list = []
    for part in parts:
        model = part.to_snapshot_model()
        clash = set(results) & set(model.metric_results)
        if clash:
            raise ValueError(
                f"snapshots share metric ids {sorted(map(str, clash))}: give the metrics distinct settings"
            )
        results.update(model.metric_results)
        top_level += model.top_level_metrics
        widgets += model.widgets
    tests = [test for metric_id in top_level for test in results[metric_id].tests]
    tests_widgets = [metric_tests_stats(tests), metric_tests_widget(tests)] if tests else []
    model = SnapshotModel(
        report=ReportModel(items=[]),
        name=name,
        timestamp=timestamp,
        metadata=metadata,
        tags=tags,
        metric_results=results,
        top_level_metrics=top_level,
        widgets=widgets,
        tests_widgets=tests_widgets,
    )
    return Snapshot.load_model(model)
