"""The built-in evaluators, one module each; registered under the ``sightline.evaluators`` group."""

from sightline.evals.evaluators._context_relevance import ContextRelevance
from sightline.evals.evaluators._corpus import Passage, ReferenceCorpus
from sightline.evals.evaluators._descriptors import Descriptors
from sightline.evals.evaluators._faithfulness import Faithfulness, NliScorer, OnnxNli
from sightline.evals.evaluators._format import Format
from sightline.evals.evaluators._llm_judge import RUBRICS, LLMJudge, Rubric
from sightline.evals.evaluators._pii_leak import PiiLeak
from sightline.evals.evaluators._prompt_injection import PromptInjection
from sightline.evals.evaluators._reference_similarity import ReferenceSimilarity
from sightline.evals.evaluators._refusal import Refusal
from sightline.evals.evaluators._relevance import Relevance
from sightline.evals.evaluators._self_consistency import (
    SampleAgreement,
    SelfConsistency,
    self_consistency,
)
from sightline.evals.evaluators._toxicity import Toxicity
from sightline.evals.evaluators._uncertainty import Uncertainty
from sightline.evals.evaluators._user_correction import UserCorrection

__all__ = [
    "RUBRICS",
    "ContextRelevance",
    "Descriptors",
    "Faithfulness",
    "Format",
    "LLMJudge",
    "NliScorer",
    "OnnxNli",
    "Passage",
    "PiiLeak",
    "PromptInjection",
    "ReferenceCorpus",
    "ReferenceSimilarity",
    "Refusal",
    "Relevance",
    "Rubric",
    "SampleAgreement",
    "SelfConsistency",
    "Toxicity",
    "Uncertainty",
    "UserCorrection",
    "self_consistency",
]
