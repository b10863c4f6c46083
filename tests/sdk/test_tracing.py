from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sightline


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    # the same in-memory exporter as sightline.testing's capture_spans (one per process)
    from sightline.testing import capture_spans

    with capture_spans() as captured:
        yield captured.exporter


def _by_name(exp: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exp.get_finished_spans()}


class TestTrace:
    def test_attributes_propagate_to_children_and_other_instrumentation(
        self, spans: InMemorySpanExporter
    ) -> None:
        with sightline.trace(
            "rag",
            user_id="u1",
            session_id="s1",
            tenant="t1",
            feature="answer",
            variant="B",
            prompt=("support", 3),
            metadata={"region": "eu"},
        ):
            with sightline.span("retrieve", kind="retrieval") as s:
                s.set_documents([{"id": "d1", "content": "Refunds in 30 days.", "score": 0.8}])
            # a span from any other instrumentation inside the trace gets them too
            with otel_trace.get_tracer("other").start_as_current_span("foreign"):
                pass
        got = _by_name(spans)
        for name in ("rag", "retrieve", "foreign"):
            a = got[name].attributes or {}
            assert a["sightline.user_id"] == "u1" and a["sightline.session_id"] == "s1"
            assert a["sightline.tenant_id"] == "t1" and a["sightline.variant"] == "B"
            assert a["sightline.prompt.name"] == "support"
            assert a["sightline.prompt.version"] == "3"
            assert a["metadata.region"] == "eu"
        docs = json.loads(str((got["retrieve"].attributes or {})["sightline.documents"]))
        assert docs == [{"id": "d1", "content": "Refunds in 30 days.", "score": 0.8}]
        assert got["retrieve"].parent is not None
        assert got["retrieve"].parent.span_id == got["rag"].context.span_id

    def test_attributes_follow_asyncio_tasks(self, spans: InMemorySpanExporter) -> None:
        @sightline.observe(kind="tool")
        async def lookup(i: int) -> int:
            await asyncio.sleep(0)
            return i * 2

        async def main() -> list[int]:
            with sightline.trace("batch", user_id="u-async"):
                return list(await asyncio.gather(*(lookup(i) for i in range(3))))

        assert asyncio.run(main()) == [0, 2, 4]
        tools = [s for s in spans.get_finished_spans() if s.name.endswith("lookup")]
        assert len(tools) == 3
        assert all((s.attributes or {})["sightline.user_id"] == "u-async" for s in tools)

    def test_attributes_do_not_leak_after_the_trace(self, spans: InMemorySpanExporter) -> None:
        with sightline.trace("one", user_id="u1"):
            pass
        with sightline.span("after"):
            pass
        assert "sightline.user_id" not in (_by_name(spans)["after"].attributes or {})


class TestObserve:
    def test_sync_function_records_input_output(self, spans: InMemorySpanExporter) -> None:
        @sightline.observe(kind="retrieval", name="search")
        def search(question: str, k: int = 3) -> list[str]:
            return ["a", "b"][:k]

        assert search("refund?", k=1) == ["a"]
        a = _by_name(spans)["search"].attributes or {}
        assert a["sightline.span.kind"] == "retrieval"
        assert json.loads(str(a["sightline.input"])) == {"question": "refund?", "k": 1}
        assert json.loads(str(a["sightline.output"])) == ["a"]

    def test_exception_is_reraised_unchanged_and_marks_error(
        self, spans: InMemorySpanExporter
    ) -> None:
        class Boom(Exception):
            pass

        err = Boom("no")

        @sightline.observe()
        def fails() -> None:
            raise err

        with pytest.raises(Boom) as caught:
            fails()
        assert caught.value is err
        [s] = spans.get_finished_spans()
        assert s.status.status_code == otel_trace.StatusCode.ERROR
        assert any(e.name == "exception" for e in s.events)

    def test_a_function_returning_nothing_has_no_output(self, spans: InMemorySpanExporter) -> None:
        """It was stored as the text "null"."""

        @sightline.observe(name="nothing")
        def nothing(x: int) -> None:
            return None

        @sightline.observe(name="zero")
        def zero() -> int:
            return 0

        nothing(1)
        zero()
        by = _by_name(spans)
        assert "sightline.output" not in (by["nothing"].attributes or {})
        assert (by["zero"].attributes or {})["sightline.output"] == "0"

    def test_generators(self, spans: InMemorySpanExporter) -> None:
        @sightline.observe(kind="llm", name="stream")
        def stream() -> Iterator[str]:
            yield "Hel"
            yield "lo"

        @sightline.observe(kind="llm", name="astream")
        async def astream() -> object:
            yield "x"

        assert "".join(stream()) == "Hello"

        async def consume() -> list[object]:
            return [x async for x in astream()]  # type: ignore[attr-defined]

        assert asyncio.run(consume()) == ["x"]
        got = _by_name(spans)
        assert (got["stream"].attributes or {})["sightline.items"] == 2
        assert (got["astream"].attributes or {})["sightline.items"] == 1

    def test_a_generators_span_is_not_current_in_the_consumers_code(
        self, spans: InMemorySpanExporter
    ) -> None:
        @sightline.observe(kind="retrieval", name="docs")
        def docs(n: int) -> Iterator[int]:
            with sightline.span("inside"):  # the generator's own code: its child
                pass
            yield from range(n)

        @sightline.observe(kind="retrieval", name="adocs")
        async def adocs() -> object:
            with sightline.span("ainside"):
                pass
            yield 1
            yield 2

        with sightline.span("request"):
            for d in docs(2):
                with sightline.span(f"use-{d}"):  # the consumer's code: not the generator's
                    pass
            for _ in docs(5):
                break  # left early: the request's context is intact
            with sightline.span("after"):
                pass

            async def consume() -> None:
                async for d in adocs():  # type: ignore[attr-defined]
                    with sightline.span(f"ause-{d}"):
                        pass
                    break

            asyncio.run(consume())
        by_id = {s.context.span_id: s.name for s in spans.get_finished_spans()}
        parents = {
            s.name: by_id.get(s.parent.span_id) if s.parent else None
            for s in spans.get_finished_spans()
        }
        assert parents["inside"] == "docs" and parents["ainside"] == "adocs"
        for name in ("use-0", "use-1", "after", "ause-1", "docs", "adocs"):
            assert parents[name] == "request", name
        assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN

    def test_an_observed_generators_error_and_return_value(
        self, spans: InMemorySpanExporter
    ) -> None:
        class Boom(Exception):
            pass

        @sightline.observe(name="fails")
        def fails() -> Iterator[int]:
            yield 1
            raise Boom("mid-way")

        @sightline.observe(name="returns")
        def returns() -> Iterator[int]:
            yield 1
            return 42

        with pytest.raises(Boom, match="mid-way"):
            list(fails())

        def outer() -> object:
            return (yield from returns())

        g = outer()
        assert next(g) == 1
        with pytest.raises(StopIteration) as stop:
            next(g)
        assert stop.value.value == 42
        got = _by_name(spans)
        assert got["fails"].status.status_code == otel_trace.StatusCode.ERROR
        assert got["returns"].status.status_code != otel_trace.StatusCode.ERROR

    def test_capture_can_be_turned_off(self, spans: InMemorySpanExporter) -> None:
        @sightline.observe(capture_input=False, capture_output=False, name="secret")
        def secret(password: str) -> str:
            return password[::-1]

        assert secret("hunter2") == "2retnuh"
        a = _by_name(spans)["secret"].attributes or {}
        assert "sightline.input" not in a and "sightline.output" not in a

    def test_content_is_size_capped(self, spans: InMemorySpanExporter) -> None:
        @sightline.observe(name="big")
        def big() -> str:
            return "x" * 1_000_000

        assert len(big()) == 1_000_000
        assert len(str((_by_name(spans)["big"].attributes or {})["sightline.output"])) == 65_536


class TestNeverHurtTheApp:
    def test_failing_serializer_is_contained(
        self, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Evil:
            def __repr__(self) -> str:
                raise RuntimeError("repr exploded")

        evil = Evil()

        @sightline.observe(name="uses_evil")
        def f(x: object) -> object:
            return x

        with caplog.at_level(logging.ERROR, logger="sightline"):
            assert f(evil) is evil  # the user's result is untouched
        assert _by_name(spans)["uses_evil"]  # and the span still exists

    def test_helpers_never_raise(self, spans: InMemorySpanExporter) -> None:
        with sightline.span("x") as s:
            s.set_attribute("bad", object())  # OTel rejects it; we must not raise
            s.set_documents([object()])  # type: ignore[list-item]
            s.set_llm(model="m", usage={"input_tokens": "many"})  # type: ignore[dict-item]
            s.set_guardrail(blocked=True, reason="pii")
        a = _by_name(spans)["x"].attributes or {}
        assert a["sightline.guardrail.blocked"] is True

    def test_set_llm_uses_genai_names(self, spans: InMemorySpanExporter) -> None:
        with sightline.span("chat") as s:
            s.set_llm(
                model="gpt-4o",
                provider="openai",
                input_messages=[{"role": "user", "content": "hi"}],
                output="hello",
                usage={"input_tokens": 10, "output_tokens": 2, "cached_input_tokens": 4},
                finish_reason="stop",
                ttft_ms=120.0,
                params={"temperature": 0.1},
            )
        a = _by_name(spans)["chat"].attributes or {}
        assert a["gen_ai.request.model"] == "gpt-4o" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.usage.input_tokens"] == 10 and a["gen_ai.usage.output_tokens"] == 2
        assert a["gen_ai.usage.cache_read.input_tokens"] == 4
        assert a["sightline.ttft_ms"] == 120.0 and a["gen_ai.request.temperature"] == 0.1
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
