"""sightline.init(redact="default"): personal data is redacted before a span leaves the app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

APP = textwrap.dedent("""
    import json
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline
    from sightline.redact import RedactionPolicy, Redactor

    exp = InMemorySpanExporter()
    policy = RedactionPolicy.from_dict({"types": {"email": "hash"}})
    sightline.init(span_exporter=exp, instrument=False,
                   redact="default" if MODE == "default" else Redactor(policy, secret=b"s"))

    @sightline.observe()
    def answer(question: str) -> str:
        with sightline.span("retrieve", kind="retrieval") as s:
            s.set_documents([{"id": "d1", "content": "owner: ann.lee@example.com"}])
        return "card 4111 1111 1111 1111 on file for ann.lee@example.com"

    answer("I am ann.lee@example.com, call +1 415 555 0132")
    sightline.shutdown()
    print(json.dumps([dict(s.attributes) for s in exp.get_finished_spans()]))
""")


def _run(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", f"MODE = {mode!r}\n" + APP],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_default_masks_before_export() -> None:
    out = _run("default")
    for raw in ("ann.lee@example.com", "4111 1111", "415 555"):
        assert raw not in out
    assert "<EMAIL>" in out and "<CREDIT_CARD>" in out and "<PHONE>" in out


def test_a_policy_object_hashes_before_export() -> None:
    out = _run("hash")
    assert "ann.lee@example.com" not in out
    tags = re.findall(r"<EMAIL:[0-9a-f]{16}>", out)
    assert len(tags) == 3 and len(set(tags)) == 1  # input, output, documents: one linked tag
