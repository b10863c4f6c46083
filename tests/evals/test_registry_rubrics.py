"""A judge rubric versioned in the prompt registry grades through the LLM judge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sightline
from _fake_judge import FakeJudge
from _helpers import API_KEY, Server
from sightline.evals import EvalCase
from sightline.evals.evaluators import LLMJudge

RUBRIC_V1 = "Grade the answer.\nQuestion: {{question}}\nAnswer to grade: {{answer}}"
RUBRIC_V2 = "Grade strictly, using {{contexts}}.\nQ: {{question}}\nAnswer to grade: {{answer}}"


@pytest.fixture
def judge() -> Iterator[FakeJudge]:
    with FakeJudge() as j:
        yield j


def test_registry_rubric_versions_grade_and_are_recorded(
    server: Server, judge: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.client() as c:
        for t, labels in ((RUBRIC_V1, ["production"]), (RUBRIC_V2, ["staging"])):
            r = c.post("/api/v1/prompts", json={"name": "accuracy-rubric", "kind": "rubric",
                                                "template": t, "labels": labels})  # fmt: skip
            assert r.status_code == 201, r.text
    monkeypatch.setenv("SIGHTLINE_ENDPOINT", server.url)
    monkeypatch.setenv("SIGHTLINE_API_KEY", API_KEY)
    sightline.clear_prompt_cache()
    for label, version in (("production", 1), ("staging", 2)):
        rubric = sightline.get_prompt("accuracy-rubric", label=label)
        assert rubric.kind == "rubric" and rubric.version == version
        j = LLMJudge.from_prompt(rubric, base_url=judge.base_url, model="gpt-4o-mini",
                                 backoff_s=0.01)  # fmt: skip
        assert j.version == f"1+accuracy-rubric.{version}"
        good, bad = j.evaluate([
            EvalCase(question="Where?", answer="In Lyon.", contexts=["Office: Lyon"]),
            EvalCase(question="Where?", answer="On the Moon."),
        ])  # fmt: skip
        assert good is not None and good.passed and bad is not None and not bad.passed
        assert good.details["rubric"] == "accuracy-rubric"
        assert good.details["rubric_version"] == str(version)
    # cases are graded concurrently: requests arrive in any order
    sent = [r["messages"][0]["content"] for r in judge.requests]
    assert len(sent) == 4
    v1 = [t for t in sent if t.startswith("Grade the answer.\nQuestion: Where?\nAnswer to grade:")]
    assert len(v1) == 2 and any(t.endswith("In Lyon.", 0, t.index("\n\nRespond")) for t in v1)
    assert all("Respond with only a JSON object" in t for t in sent)  # the format is appended
    assert (
        sum(t.startswith("Grade strictly, using [1] Office: Lyon.\nQ: Where?") for t in sent) == 1
    )
    sightline.clear_prompt_cache()


def test_rubric_templates_name_only_the_case_fields() -> None:
    with pytest.raises(ValueError, match="tone"):
        LLMJudge(rubric="custom", template="Grade {{answer}} for {{tone}}")
    chat = sightline.Prompt(name="r", version=1, template=[{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="text template"):
        LLMJudge.from_prompt(chat)
