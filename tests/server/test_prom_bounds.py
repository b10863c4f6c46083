"""The per-model LLM series of /metrics stay bounded when clients send many model names."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from prometheus_client import generate_latest

from _helpers import Server, free_port
from sightline.server._prom import MAX_MODELS, OTHER_MODEL, Metrics
from sightline.store._arrow import records_to_table
from store._spans import span_record


def test_models_past_the_cap_count_under_other_and_no_span_is_lost() -> None:
    m = Metrics()
    n = MAX_MODELS + 300
    records = [
        span_record(
            project_id="p", kind="llm", model=f"m-{i}", status="ok", duration_ms=10.0,
            input_tokens=2, output_tokens=1,
        )
        for i in range(n)
    ]  # fmt: skip
    m.observe_commit([records_to_table(records)])
    models = m.project("p").llm.models
    assert len(models) == MAX_MODELS + 1 and OTHER_MODEL in models
    assert sum(sum(s.requests.values()) for s in models.values()) == n
    assert models[OTHER_MODEL].input_tokens == 2 * 300
    # a model seen before the cap keeps its own series
    m.observe_commit([records_to_table([records[0]])])
    assert models["m-0"].requests == {"ok": 2}
    text = generate_latest(m.project("p").registry).decode()
    assert f'model="{OTHER_MODEL}"' in text


def test_long_model_names_and_negative_ttft_keep_a_real_scrape_small_and_monotonic(
    tmp_path: Path,
) -> None:
    """A model name may be up to max_text_bytes (1 MiB) long, and every series repeats it: four
    such spans made a 112 MB scrape, a thousand would exhaust the server. A negative native
    ttft_ms went into the histogram and took its _sum down."""
    from prometheus_client.parser import text_string_to_metric_families

    srv = Server(data_dir=tmp_path / "data", port=free_port()).start()
    c = srv.client()
    try:
        now = time.time_ns()
        spans = [
            {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16], "name": "chat",
             "kind": "llm", "start_time": now, "end_time": now + 10**9,
             "model": f"{i}" + "m" * 200_000, "ttft_ms": -500.0}
            for i in range(4)
        ]  # fmt: skip
        spans.append(
            {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16], "name": "chat",
             "kind": "llm", "start_time": now, "end_time": now + 10**9, "model": "gpt-4o",
             "ttft_ms": -500.0}
        )  # fmt: skip
        r = c.post("/api/v1/spans", json=spans)
        assert r.status_code == 200, r.text
        text = c.get("/metrics").text
        assert len(text) < 64_000, len(text)
        samples = {
            (s.name, s.labels.get("model")): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }
        assert samples[("sightline_llm_requests_total", OTHER_MODEL)] == 4
        assert samples[("sightline_llm_requests_total", "gpt-4o")] == 1
        assert all(v >= 0 for (name, _), v in samples.items() if name.startswith("sightline_llm_"))
        assert r.json()["repaired_reasons"].get("invalid_ttft_ms") == 5
        got = c.get("/api/v1/spans", params={"model": "gpt-4o"}).json()["data"]
        assert got[0]["ttft_ms"] is None
    finally:
        c.close()
        srv.stop()
