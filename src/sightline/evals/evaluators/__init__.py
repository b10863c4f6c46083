"""The built-in evaluators, one module each."""

from sightline.evals.evaluators._faithfulness import Faithfulness, NliScorer, OnnxNli
from sightline.evals.evaluators._pii_leak import PiiLeak
from sightline.evals.evaluators._prompt_injection import PromptInjection
from sightline.evals.evaluators._refusal import Refusal
from sightline.evals.evaluators._toxicity import Toxicity

__all__ = [
    "Faithfulness",
    "NliScorer",
    "OnnxNli",
    "PiiLeak",
    "PromptInjection",
    "Refusal",
    "Toxicity",
]
