"""Sampling decides per trace, and a trace that ends in error is always kept."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from sightline.sdk._sampling import _MAX_TRACES, ErrorKeepingProcessor, sampler_for


def _setup(rate: float) -> tuple[TracerProvider, InMemorySpanExporter, ErrorKeepingProcessor]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler_for(rate))
    proc = ErrorKeepingProcessor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(proc)
    return provider, exporter, proc


def _trace(provider: TracerProvider, *, error_in_child: bool) -> int:
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("retrieve"):
            pass
        with tracer.start_as_current_span("llm") as llm:
            if error_in_child:
                llm.set_status(Status(StatusCode.ERROR, "503"))
    return root.get_span_context().trace_id


def test_rate_zero_keeps_only_error_traces_whole() -> None:
    provider, exporter, _ = _setup(0.0)
    ok = _trace(provider, error_in_child=False)
    bad = _trace(provider, error_in_child=True)
    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {bad} and ok != bad
    assert sorted(s.name for s in spans) == ["llm", "retrieve", "root"]  # children too
    assert all(s.context.trace_flags.sampled for s in spans)


def test_rate_half_samples_about_half_and_every_error() -> None:
    provider, exporter, _ = _setup(0.5)
    oks = [_trace(provider, error_in_child=False) for _ in range(400)]
    bads = [_trace(provider, error_in_child=True) for _ in range(50)]
    exported = {s.context.trace_id for s in exporter.get_finished_spans()}
    assert set(bads) <= exported
    kept = sum(t in exported for t in oks)
    assert 140 <= kept <= 260  # binomial(400, 0.5): 6 sigma either side
    # children follow their root: an exported trace has all three spans
    per_trace: dict[int, int] = {}
    for s in exporter.get_finished_spans():
        per_trace[s.context.trace_id] = per_trace.get(s.context.trace_id, 0) + 1
    assert set(per_trace.values()) == {3}


def test_rate_one_exports_everything_directly() -> None:
    provider, exporter, proc = _setup(1.0)
    for _ in range(20):
        _trace(provider, error_in_child=False)
    assert len(exporter.get_finished_spans()) == 60
    assert not proc._pending


def test_open_traces_are_bounded() -> None:
    provider, _, proc = _setup(0.0)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("never-ends")
    from opentelemetry import trace

    with trace.use_span(root, end_on_exit=False):
        for _ in range(10):
            tracer.start_span("child").end()
    # many traces whose roots never end: the buffer keeps the newest _MAX_TRACES
    for _ in range(_MAX_TRACES + 50):
        r = tracer.start_span("r")
        with trace.use_span(r, end_on_exit=False):
            tracer.start_span("c").end()
    assert len(proc._pending) == _MAX_TRACES
