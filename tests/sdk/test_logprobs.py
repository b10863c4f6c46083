"""Token log-probabilities: the real openai client asks for them, the span keeps a summary."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from sightline.sdk._logprobs import entropy, summarise, tokens_of
from sightline.testing import CapturedSpans, FakeProvider

Q: Any = [{"role": "user", "content": "Is the annual plan refundable?"}]

pytestmark = pytest.mark.usefixtures("instrumented")


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
    yield c
    c.close()


class TestLogprobSummary:
    def test_summary_matches_the_tokens_the_client_received(
        self, client: openai.OpenAI, capture_spans: CapturedSpans
    ) -> None:
        chat = client.chat.completions.create(
            model="gpt-4o-mini", messages=Q, logprobs=True, top_logprobs=3
        )
        content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
        assert content is not None and len(content) == 7
        lps = [t.logprob for t in content]
        assert len(set(lps)) > 1  # the fake's log-probabilities vary by token
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["sightline.logprobs.num_tokens"] == 7
        assert a["sightline.logprobs.mean"] == pytest.approx(sum(lps) / 7)
        assert a["sightline.logprobs.min"] == pytest.approx(min(lps))
        ents = []
        for t in content:
            probs = [math.exp(x.logprob) for x in t.top_logprobs]
            probs.append(1 - sum(probs))
            ents.append(-sum(p * math.log(p) for p in probs if p > 0))
        assert a["sightline.logprobs.entropy_mean"] == pytest.approx(sum(ents) / 7)

    def test_a_sure_answer_has_low_entropy_and_a_high_mean(
        self, client: openai.OpenAI, capture_spans: CapturedSpans
    ) -> None:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=Q,
            logprobs=True,
            top_logprobs=5,
            extra_headers={"x-fake-logprob": "-0.01"},
        )
        client.chat.completions.create(
            model="gpt-4o",
            messages=Q,
            logprobs=True,
            top_logprobs=5,
            extra_headers={"x-fake-logprob": "-1.6"},
        )
        sure = capture_spans.attributes("chat gpt-4o-mini")
        unsure = capture_spans.attributes("chat gpt-4o")
        assert sure["sightline.logprobs.mean"] == pytest.approx(-0.01)
        assert unsure["sightline.logprobs.min"] == pytest.approx(-1.6)
        assert sure["sightline.logprobs.entropy_mean"] < 0.1
        assert unsure["sightline.logprobs.entropy_mean"] > 1.0

    def test_streamed_logprobs_give_the_same_summary(
        self, client: openai.OpenAI, capture_spans: CapturedSpans
    ) -> None:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=Q, logprobs=True, top_logprobs=2
        )
        whole = capture_spans.attributes("chat gpt-4o-mini")
        capture_spans.clear()
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=Q, logprobs=True, top_logprobs=2, stream=True
        )
        for _ in stream:
            pass
        streamed = capture_spans.attributes("chat gpt-4o-mini")
        for k in ("mean", "min", "entropy_mean", "num_tokens"):
            key = f"sightline.logprobs.{k}"
            assert streamed[key] == pytest.approx(whole[key])

    def test_no_logprobs_asked_no_attributes(
        self, client: openai.OpenAI, capture_spans: CapturedSpans
    ) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=Q)
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert not any(k.startswith("sightline.logprobs.") for k in a)

    def test_logprobs_without_top_alternatives_have_no_entropy(
        self, client: openai.OpenAI, capture_spans: CapturedSpans
    ) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=Q, logprobs=True)
        a = capture_spans.attributes("chat gpt-4o-mini")
        assert a["sightline.logprobs.num_tokens"] == 7
        assert "sightline.logprobs.entropy_mean" not in a


class TestSummaryMath:
    def test_entropy_of_a_certain_token_is_zero_and_of_a_coin_is_ln2(self) -> None:
        assert entropy([0.0]) == pytest.approx(0.0)
        assert entropy([math.log(0.5), math.log(0.5)]) == pytest.approx(math.log(2))
        assert entropy([math.log(0.5)]) == pytest.approx(math.log(2))  # the rest is one outcome
        assert entropy([]) is None

    def test_malformed_logprobs_are_skipped_not_raised(self) -> None:
        toks = tokens_of(
            {"content": [{"logprob": "x"}, {"logprob": -0.5}, None, {"logprob": True}]}
        )
        assert toks == [(-0.5, [])]
        assert tokens_of(None) == [] and summarise([]) == {}
        s = summarise([(-math.inf, []), (-0.5, [])])
        assert math.isfinite(s["sightline.logprobs.mean"])
