"""trace() attributes and the parent span follow the work into threads and thread pools."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import sightline
from sightline.testing import CapturedSpans


@pytest.fixture(autouse=True)
def threads() -> Iterator[None]:
    sightline.instrument_threads()
    yield
    sightline.uninstrument_threads()


def _work(i: int) -> int:
    with sightline.span(f"work-{i}", kind="tool"):
        return i


def _assert_children(captured: CapturedSpans, names: list[str]) -> None:
    root = captured.one("request")
    for name in names:
        s = captured.one(name)
        assert s.parent is not None and s.parent.span_id == root.context.span_id, name
        assert s.context.trace_id == root.context.trace_id
        assert (s.attributes or {})["sightline.user_id"] == "u-thread", name


class TestThreads:
    def test_thread_and_thread_subclass(self, capture_spans: CapturedSpans) -> None:
        class Worker(threading.Thread):
            def run(self) -> None:  # overrides run(): the context must still be there
                _work(2)

        with sightline.trace("request", user_id="u-thread"):
            t1 = threading.Thread(target=_work, args=(1,))
            t2 = Worker()
            t1.start()
            t2.start()
            t1.join()
            t2.join()
        _assert_children(capture_spans, ["work-1", "work-2"])

    def test_thread_pool_tasks_get_the_submitters_context(
        self, capture_spans: CapturedSpans
    ) -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(lambda: None).result()  # workers started outside any trace
            with sightline.trace("request", user_id="u-thread"):
                assert list(pool.map(_work, [3, 4, 5])) == [3, 4, 5]
            # after the trace, a task in the same worker threads has no trace attributes
            pool.submit(_work, 6).result()
        _assert_children(capture_spans, ["work-3", "work-4", "work-5"])
        after = capture_spans.one("work-6")
        assert after.parent is None and "sightline.user_id" not in (after.attributes or {})

    def test_without_propagation_threads_start_a_new_trace(
        self, capture_spans: CapturedSpans
    ) -> None:
        sightline.uninstrument_threads()
        with sightline.trace("request", user_id="u-thread"):
            t = threading.Thread(target=_work, args=(7,))
            t.start()
            t.join()
        assert capture_spans.one("work-7").parent is None
