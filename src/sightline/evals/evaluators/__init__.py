"""The built-in evaluators, one module each."""

from sightline.evals.evaluators._faithfulness import Faithfulness, NliScorer, OnnxNli

__all__ = ["Faithfulness", "NliScorer", "OnnxNli"]
