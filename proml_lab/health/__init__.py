"""HEALTH ASSURANCE pillar: anomaly detection on metric series, an alert store with feedback, drift measures.

``monitor`` and ``retrain`` are modules here (``from proml_lab.health.monitor import monitor``), so the
package never has an attribute that is a function one moment and a module the next. The surface is small
and lazy: ``import proml_lab.health`` loads nothing heavy; each name is imported from
its module on first use (statsmodels only when :class:`SeasonalModel` runs).

>>> from proml_lab.health import MeanVariance, psi          # doctest: +SKIP
>>> MeanVariance(k=3.0).detect(series)                      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from proml_lab.errors import HealthError

__all__ = [
    "LABELS",
    "AnomalyStore",
    "CheckFailedError",
    "CheckReport",
    "ConsistencyReport",
    "ConsistencyThresholds",
    "DriftThresholds",
    "HealthError",
    "HealthReport",
    "MeanVariance",
    "PercentChange",
    "Problem",
    "RetrainPolicy",
    "RetrainResult",
    "SeasonalModel",
    "Webhook",
    "auc_decay",
    "authoring_checks",
    "calibration_error",
    "check_consistency",
    "detect_anomalies",
    "drift_report",
    "ensure_snapshot",
    "feature_drift",
    "js_distance",
    "js_from_reference",
    "load_snapshot",
    "metric_series",
    "psi",
    "psi_from_reference",
    "record_health_alerts",
    "retrain_history",
    "retrain_if_needed",
    "run_consistency_job",
    "score_drift",
    "should_retrain",
    "training_snapshot",
]


_LAZY = {
    "CheckFailedError": "proml_lab.health.checks",
    "CheckReport": "proml_lab.health.checks",
    "Problem": "proml_lab.health.checks",
    "authoring_checks": "proml_lab.health.checks",
    "ConsistencyReport": "proml_lab.health.consistency",
    "ConsistencyThresholds": "proml_lab.health.consistency",
    "check_consistency": "proml_lab.health.consistency",
    "run_consistency_job": "proml_lab.health.consistency",
    "PercentChange": "proml_lab.health.anomaly",
    "MeanVariance": "proml_lab.health.anomaly",
    "SeasonalModel": "proml_lab.health.anomaly",
    "AnomalyStore": "proml_lab.health.alerts",
    "LABELS": "proml_lab.health.alerts",
    "Webhook": "proml_lab.health.alerts",
    "DriftThresholds": "proml_lab.health.drift",
    "auc_decay": "proml_lab.health.drift",
    "drift_report": "proml_lab.health.drift",
    "js_distance": "proml_lab.health.drift",
    "psi": "proml_lab.health.drift",
    "score_drift": "proml_lab.health.drift",
    "RetrainPolicy": "proml_lab.health.retrain",
    "RetrainResult": "proml_lab.health.retrain",
    "retrain_history": "proml_lab.health.retrain",
    "retrain_if_needed": "proml_lab.health.retrain",
    "should_retrain": "proml_lab.health.retrain",
    "HealthReport": "proml_lab.health.monitor",
    "record_health_alerts": "proml_lab.health.monitor",
    "metric_series": "proml_lab.health.monitor",
    "detect_anomalies": "proml_lab.health.monitor",
    "feature_drift": "proml_lab.health.monitor",
    "training_snapshot": "proml_lab.health.snapshot",
    "load_snapshot": "proml_lab.health.snapshot",
    "ensure_snapshot": "proml_lab.health.snapshot",
    "calibration_error": "proml_lab.health.drift",
    "psi_from_reference": "proml_lab.health.drift",
    "js_from_reference": "proml_lab.health.drift",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'proml_lab.health' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
