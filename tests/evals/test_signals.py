"""Uncertainty from log-probabilities and self-consistency of sampled answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sightline.evals import EvalCase, case_from_span
from sightline.evals.evaluators import SelfConsistency, Uncertainty, self_consistency
from sightline.model import Span

# Sets of three answers to one prompt. Consistent: paraphrases of one fact. Contradictory:
# different numbers, names, or a denial — what a model that guesses produces.
CONSISTENT = [
    [
        "Annual plans can be refunded within 30 days of purchase.",
        "You can get a refund on an annual plan within 30 days after buying it.",
        "Refunds for annual plans are available for 30 days from purchase.",
    ],
    [
        "The Eiffel Tower was completed in 1889.",
        "It was finished in 1889 for the World Fair.",
        "Construction of the Eiffel Tower ended in 1889.",
    ],
    [
        "Water boils at 100 degrees Celsius at sea level.",
        "At sea level, water boils at 100 °C.",
        "The boiling point of water at sea level is 100 degrees Celsius.",
    ],
    [
        "Reset your password from the login page by clicking 'Forgot password'.",
        "Click 'Forgot password' on the login page to reset it.",
        "Use the Forgot password link on the login page to set a new password.",
    ],
    [
        "The capital of Australia is Canberra.",
        "Canberra is Australia's capital city.",
        "Australia's capital is Canberra, not Sydney.",
    ],
    [
        "Python lists are mutable, tuples are immutable.",
        "A tuple cannot be changed after creation, while a list can.",
        "Lists can be modified; tuples are immutable.",
    ],
    [
        "Shipping to Canada takes 5 to 7 business days.",
        "Orders to Canada arrive in 5-7 business days.",
        "Expect delivery to Canada within 5 to 7 business days.",
    ],
    [
        "The free tier includes 1000 API calls per month.",
        "You get 1000 API calls each month on the free tier.",
        "Free accounts are limited to 1000 calls a month.",
    ],
]
CONTRADICTORY = [
    [
        "Annual plans can be refunded within 30 days of purchase.",
        "Annual plans are refundable for 90 days.",
        "Annual plans cannot be refunded.",
    ],
    [
        "The capital of Australia is Canberra.",
        "The capital of Australia is Sydney.",
        "Melbourne is the capital of Australia.",
    ],
    [
        "Take the ibuprofen with food to avoid stomach upset.",
        "Ibuprofen should be taken on an empty stomach.",
        "You can drink coffee with it.",
    ],
    [
        "The Eiffel Tower was completed in 1889.",
        "The Eiffel Tower was completed in 1901.",
        "It opened in 1875.",
    ],
    [
        "Shipping to Canada takes 5 to 7 business days.",
        "We do not ship to Canada.",
        "Delivery to Canada takes about three weeks.",
    ],
    [
        "The free tier includes 1000 API calls per month.",
        "The free tier has no monthly limit on API calls.",
        "Free accounts get 50 calls per day.",
    ],
    [
        "Yes, the Pro plan includes phone support.",
        "No, phone support is not included in the Pro plan.",
        "Phone support is only available on Enterprise.",
    ],
    [
        "Python was created by Guido van Rossum.",
        "Python was created by James Gosling.",
        "Dennis Ritchie designed Python.",
    ],
]


class TestSelfConsistency:
    def test_separates_consistent_from_contradictory_sets(self) -> None:
        good = [self_consistency(s) for s in CONSISTENT]
        bad = [self_consistency(s) for s in CONTRADICTORY]
        gs = [a.score for a in good if a is not None]
        bs = [a.score for a in bad if a is not None]
        assert len(gs) == len(bs) == 8
        # ranking: a consistent set outscores a contradictory one in most pairs (AUC)
        wins = sum((g > b) + 0.5 * (g == b) for g in gs for b in bs)
        assert wins / 64 >= 0.9
        assert sum(gs) / 8 - sum(bs) / 8 > 0.4
        ev = SelfConsistency()
        right = sum(a.score >= ev.threshold for a in good if a) + sum(
            a.score < ev.threshold for a in bad if a
        )
        assert right >= 14  # of 16 at the default threshold (docs/signals.md lists the misses)

    def test_conflicts_name_their_reason(self) -> None:
        a = self_consistency(CONTRADICTORY[0])
        assert a is not None and a.num_conflicts == 3 and a.score == 0.0
        assert any("different numbers" in c for c in a.conflicts)
        assert any("denies" in c for c in a.conflicts)

    def test_identical_answers_agree_fully_and_one_answer_is_not_applicable(self) -> None:
        a = self_consistency(["Refunds take 30 days."] * 4)
        assert a is not None and a.score == pytest.approx(1.0, abs=1e-3) and a.num_pairs == 6
        assert self_consistency(["only one", "  "]) is None

    def test_evaluator_reads_samples_from_the_span_attribute(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        span = Span(
            project_id="p",
            trace_id="a" * 32,
            span_id="b" * 16,
            kind="llm",
            start_time=now,
            end_time=now,
            output=CONTRADICTORY[3][0],
            attributes={"sightline.samples": json.dumps(CONTRADICTORY[3][1:])},
        )
        case = case_from_span(span)
        [r] = SelfConsistency().evaluate([case])
        assert r is not None and r.label == "inconsistent" and r.passed is False
        assert r.details["num_answers"] == 3
        assert SelfConsistency().evaluate([EvalCase(answer="x")]) == [None]
        bad = EvalCase(answer="x", metadata={"samples": "not json ["})
        assert SelfConsistency().evaluate([bad]) == [None]
        # json.loads raised RecursionError here, failing the batch's other cases with it
        deep = EvalCase(answer="x", metadata={"samples": "[" * 100_000})
        assert SelfConsistency().evaluate([deep]) == [None]

    def test_rejects_out_of_range_options(self) -> None:
        with pytest.raises(ValueError):
            SelfConsistency(threshold=2)


class TestUncertainty:
    def _span(self, **attrs: object) -> Span:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        return Span(
            project_id="p",
            trace_id="a" * 32,
            span_id="b" * 16,
            kind="llm",
            start_time=now,
            end_time=now,
            output="42",
            attributes=dict(attrs),
        )

    def test_confidence_is_the_geometric_mean_token_probability(self) -> None:
        sure = case_from_span(
            self._span(
                **{
                    "sightline.logprobs.mean": -0.05,
                    "sightline.logprobs.min": -0.2,
                    "sightline.logprobs.entropy_mean": 0.1,
                }  # fmt: skip
            )
        )
        unsure = case_from_span(self._span(**{"sightline.logprobs.mean": -1.2}))
        none = case_from_span(self._span())
        r_sure, r_unsure, r_none = Uncertainty().evaluate([sure, unsure, none])
        assert r_sure is not None and r_sure.score == pytest.approx(0.951, abs=1e-3)
        assert r_sure.label == "confident" and r_sure.details["entropy_mean"] == 0.1
        assert r_unsure is not None and r_unsure.label == "uncertain"
        assert r_unsure.score == pytest.approx(0.301, abs=1e-3)
        assert r_none is None

    def test_a_positive_min_logprob_does_not_fail_the_batch(self) -> None:
        # exp(1000) raised OverflowError: every case of the batch was stored as failed
        ok = case_from_span(self._span(**{"sightline.logprobs.mean": -0.05}))
        odd = case_from_span(
            self._span(**{"sightline.logprobs.mean": -0.1, "sightline.logprobs.min": 1000.0})
        )
        r_ok, r_odd = Uncertainty().evaluate([ok, odd])
        assert r_ok is not None and r_ok.label == "confident"
        assert r_odd is not None and r_odd.score == pytest.approx(0.905, abs=1e-3)
        assert r_odd.details["min_logprob"] == 0.0

    def test_garbage_summaries_are_not_applicable(self) -> None:
        for v in ("nan", "abc", True, None, [1]):
            case = case_from_span(self._span(**{"sightline.logprobs.mean": v}))
            assert Uncertainty().evaluate([case]) == [None]
