"""Drift detection: compare a current window of prompts and responses with a baseline."""

from sightline.drift._detectors import (
    Detection,
    embedding_mmd,
    emerging_topics,
    js_divergence,
    kl_divergence,
    psi,
    psi_test,
    semantic_same_input,
    token_distribution,
)
from sightline.drift._jobs import (
    DETECTORS,
    Baseline,
    DriftJob,
    DriftMonitor,
    parse_drift_jobs,
    run_job,
)
from sightline.drift._registry import BUILTIN_DETECTORS, DriftDetector, Samples, TestSettings

__all__ = [
    "BUILTIN_DETECTORS",
    "DETECTORS",
    "Baseline",
    "Detection",
    "DriftDetector",
    "DriftJob",
    "DriftMonitor",
    "Samples",
    "TestSettings",
    "embedding_mmd",
    "emerging_topics",
    "js_divergence",
    "kl_divergence",
    "parse_drift_jobs",
    "psi",
    "psi_test",
    "run_job",
    "semantic_same_input",
    "token_distribution",
]
