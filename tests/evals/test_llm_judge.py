"""The LLM judge against a local fake OpenAI-compatible server (a real HTTP server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _fake_judge import FakeJudge
from sightline.evals import EvalCase
from sightline.evals.evaluators import LLMJudge

GOOD = EvalCase(question="Where is the office?", answer="Our office is in Lyon.")
BAD = EvalCase(question="Where is the office?", answer="Our office is on the Moon.")


@pytest.fixture
def judge() -> Iterator[FakeJudge]:
    with FakeJudge() as j:
        yield j


def _judge(fake: FakeJudge, **kw: object) -> LLMJudge:
    return LLMJudge(
        base_url=fake.base_url,
        model="gpt-4o-mini",
        api_key="sk-test",
        backoff_s=0.01,
        **kw,  # type: ignore[arg-type]
    )


class TestLLMJudge:
    def test_grades_with_the_rubric_and_records_its_tokens_and_cost(self, judge: FakeJudge) -> None:
        good, bad, none = _judge(judge, rubric="accuracy").evaluate(
            [GOOD, BAD, EvalCase(question="q")]
        )
        assert good is not None and good.score == 1.0 and good.passed and good.label == "pass"
        assert bad is not None and bad.score == 0.0 and not bad.passed and bad.label == "fail"
        assert none is None
        assert good.explanation == "graded 5"
        d = dict(good.details)
        assert d["input_tokens"] == 100 and d["output_tokens"] == 20
        assert d["rubric"] == "accuracy" and d["rubric_version"] == "1"
        assert d["judge_model"] == "gpt-4o-mini" and d["attempts"] == 1
        # gpt-4o-mini from the genai-prices data: a real, positive cost
        assert d["cost_usd"] is not None and 0 < d["cost_usd"] < 0.001
        req = judge.requests[0]
        assert req["model"] == "gpt-4o-mini" and req["temperature"] == 0.0
        assert req["response_format"] == {"type": "json_object"}
        assert "Respond with only a JSON object" in req["messages"][0]["content"]
        assert judge.headers[0]["authorization"] == "Bearer sk-test"

    def test_explicit_prices_override_the_price_table(self, judge: FakeJudge) -> None:
        [r] = _judge(judge, price_input_mtok=1.0, price_output_mtok=10.0).evaluate([GOOD])
        assert r is not None and r.details["cost_usd"] == pytest.approx((100 + 200) / 1e6)

    @pytest.mark.parametrize("status", [503, 429])
    def test_retries_transient_errors_with_backoff(self, judge: FakeJudge, status: int) -> None:
        judge.fail_first, judge.fail_status = 2, status
        [r] = _judge(judge, concurrency=1).evaluate([BAD])
        assert r is not None and r.score == 0.0
        assert r.details["attempts"] == 3
        assert len(judge.requests) == 3

    def test_gives_up_after_max_retries_with_a_failed_result(self, judge: FakeJudge) -> None:
        judge.fail_first = 100
        [r] = _judge(judge, max_retries=2).evaluate([GOOD])
        assert r is not None and r.label == "failed" and r.score is None and r.passed is None
        assert r.explanation == "judge answered HTTP 503"
        assert len(judge.requests) == 3

    def test_output_that_is_not_the_json_asked_for_is_retried_then_failed(
        self, judge: FakeJudge
    ) -> None:
        judge.garbage = True
        [r] = _judge(judge, max_retries=1).evaluate([GOOD])
        assert r is not None and r.label == "failed"
        assert "no JSON object" in (r.explanation or "")
        # the judge's tokens were spent on both attempts, and are recorded
        assert r.details["input_tokens"] == 200 and r.details["attempts"] == 2

    def test_an_answer_body_that_is_not_an_object_is_retried_not_raised(
        self, judge: FakeJudge
    ) -> None:
        # A list or a string body, or a usage that is not an object, raised AttributeError out
        # of evaluate: every case of the batch was stored as failed, its good grades with them.
        judge.bodies = [["not", "an", "object"], "busy", {"usage": "n/a", "choices": []}]
        good, bad = _judge(judge, concurrency=1, max_retries=3).evaluate([GOOD, BAD])
        assert good is not None and good.score == 1.0 and good.details["attempts"] == 4
        assert "not an object" not in (good.explanation or "")
        assert bad is not None and bad.score == 0.0 and bad.details["attempts"] == 1
        judge.bodies = [[1]] * 2
        [r] = _judge(judge, max_retries=1).evaluate([GOOD])
        assert r is not None and r.label == "failed" and r.score is None
        assert "not an object" in (r.explanation or "") and r.details["attempts"] == 2

    def test_odd_token_counts_do_not_throw_away_a_grade(self, judge: FakeJudge) -> None:
        # int() of these raised inside the attempt: a usable grade was retried, then failed
        choice = {"message": {"content": '{"score": 4, "explanation": "ok"}'}}
        judge.bodies = [
            {"choices": [choice], "usage": {"prompt_tokens": "120.0", "completion_tokens": [7]}}
        ]
        [r] = _judge(judge, max_retries=0).evaluate([GOOD])
        assert r is not None and r.score == 0.75 and r.details["attempts"] == 1
        assert r.details["input_tokens"] == 120 and r.details["output_tokens"] == 0

    def test_a_refused_request_is_not_retried(self, judge: FakeJudge) -> None:
        judge.status_always = 401
        [r] = _judge(judge).evaluate([GOOD])
        assert r is not None and r.label == "failed" and "HTTP 401" in (r.explanation or "")
        assert len(judge.requests) == 1

    def test_unreachable_judge_fails_each_case_without_raising(self) -> None:
        j = LLMJudge(base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01, timeout_s=2)
        [r] = j.evaluate([GOOD])
        assert r is not None and r.label == "failed"
        assert "judge unreachable" in (r.explanation or "")

    def test_custom_rubric_template(self, judge: FakeJudge) -> None:
        [r] = _judge(
            judge, rubric="custom", template="Is this polite? Answer to grade: {answer}"
        ).evaluate([GOOD])
        assert r is not None and r.passed
        assert judge.requests[0]["messages"][0]["content"].startswith("Is this polite?")
