"""Evaluation: judge answers for quality, grounding and safety, offline and on the CPU."""

from sightline.evals._embed import DIM, Embedder, default_embedder
from sightline.evals.base import EvalCase, EvalResult, Evaluator

__all__ = ["DIM", "EvalCase", "EvalResult", "Embedder", "Evaluator", "default_embedder"]
