"""The per-model LLM series of /metrics stay bounded when clients send many model names."""

from __future__ import annotations

from prometheus_client import generate_latest

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
