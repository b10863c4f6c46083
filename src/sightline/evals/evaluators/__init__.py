"""Built-in evaluators, one module each; registered under the ``sightline.evaluators`` group."""

from sightline.evals.evaluators._context_relevance import ContextRelevance
from sightline.evals.evaluators._format import Format
from sightline.evals.evaluators._llm_judge import RUBRICS, LLMJudge, Rubric
from sightline.evals.evaluators._reference_similarity import ReferenceSimilarity
from sightline.evals.evaluators._relevance import Relevance
from sightline.evals.evaluators._user_correction import UserCorrection

__all__ = [
    "RUBRICS",
    "ContextRelevance",
    "Format",
    "LLMJudge",
    "ReferenceSimilarity",
    "Relevance",
    "Rubric",
    "UserCorrection",
]
