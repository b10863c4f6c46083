"""Evaluation: judge answers for quality, grounding and safety, offline and on the CPU."""

from sightline.evals._agreement import (
    HUMAN_LABELS,
    Agreement,
    agreement,
    agreement_by_evaluator,
    human_passed,
)
from sightline.evals._cases import case_from_span, cases_from_trace
from sightline.evals._embed import DIM, MODEL_L3, MODEL_L6, MODELS, Embedder, default_embedder
from sightline.evals._offline import (
    CoverageDrop,
    Regression,
    Summary,
    compare_coverage,
    compare_to_baseline,
    evaluate_rows,
    format_summary,
    read_jsonl,
    row_to_case,
    summarize,
)
from sightline.evals._registry import (
    available_evaluators,
    default_evaluator_names,
    evaluator_class,
    load_evaluator,
    load_evaluators,
)
from sightline.evals._runner import EvalRunner, RunnerOptions, sampled
from sightline.evals._worker import EvaluatorWorkerError, EvalWorker
from sightline.evals.base import EvalCase, EvalResult, Evaluator

__all__ = [
    "DIM",
    "HUMAN_LABELS",
    "MODELS",
    "MODEL_L3",
    "MODEL_L6",
    "Agreement",
    "CoverageDrop",
    "EvalCase",
    "EvalResult",
    "EvalRunner",
    "EvalWorker",
    "EvaluatorWorkerError",
    "Embedder",
    "Evaluator",
    "Regression",
    "RunnerOptions",
    "Summary",
    "agreement",
    "agreement_by_evaluator",
    "available_evaluators",
    "case_from_span",
    "cases_from_trace",
    "compare_coverage",
    "compare_to_baseline",
    "default_embedder",
    "default_evaluator_names",
    "evaluate_rows",
    "evaluator_class",
    "format_summary",
    "human_passed",
    "load_evaluator",
    "load_evaluators",
    "read_jsonl",
    "row_to_case",
    "sampled",
    "summarize",
]
