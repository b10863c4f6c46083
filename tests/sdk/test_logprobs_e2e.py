"""Acceptance: the real openai client asks for logprobs, `sightline serve` stores the summary,
and the uncertainty evaluator scores it from the stored span."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime

import pytest

from _helpers import API_KEY, Server
from sightline.evals import case_from_span
from sightline.evals.evaluators import Uncertainty
from sightline.model import Span
from sightline.testing import FakeProvider

APP = textwrap.dedent("""
    import sys
    import openai
    import sightline

    sightline.init(endpoint=sys.argv[1], api_key=sys.argv[2], service_name="rag-app")
    client = openai.OpenAI(base_url=sys.argv[3], api_key="test")
    with sightline.trace("ask", feature="billing-answer") as root:
        for lp in ("-0.02", "-1.5"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Refund window?"}],
                logprobs=True, top_logprobs=4, extra_headers={"x-fake-logprob": lp})
        print(format(root.otel.get_span_context().trace_id, "032x"))
    sightline.shutdown()
""")


def test_logprob_summary_is_stored_and_scored(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    with FakeProvider(reply="Annual plans are refundable within 30 days.") as fake:
        proc = subprocess.run(
            [sys.executable, "-c", APP, server.url, API_KEY, fake.openai_base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.strip()
    with server.client() as c:
        spans = c.get("/api/v1/spans", params={"trace_id": trace_id, "kind": "llm"}).json()
    stored = sorted(spans["data"], key=lambda s: s["start_time"])
    assert len(stored) == 2
    sure, unsure = (s["attributes"] for s in stored)
    assert sure["sightline.logprobs.mean"] == pytest.approx(-0.02)
    assert sure["sightline.logprobs.num_tokens"] == 7
    assert unsure["sightline.logprobs.min"] == pytest.approx(-1.5)
    assert unsure["sightline.logprobs.entropy_mean"] > sure["sightline.logprobs.entropy_mean"]
    fields = set(Span.__dataclass_fields__)
    cases = []
    for s in stored:
        d = {k: v for k, v in s.items() if k in fields}
        d["start_time"] = datetime.fromisoformat(d["start_time"])
        d["end_time"] = datetime.fromisoformat(d["end_time"])
        cases.append(case_from_span(Span(**d)))
    r_sure, r_unsure = Uncertainty().evaluate(cases)
    assert r_sure is not None and r_sure.label == "confident"
    assert r_unsure is not None and r_unsure.label == "uncertain"
