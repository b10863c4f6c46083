"""init(instrument=...) instruments the client libraries, even those imported after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sightline.sdk._config import resolve_options

APP = textwrap.dedent("""
    import sys
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    assert "openai" not in sys.modules
    sightline.init(span_exporter=InMemorySpanExporter())
    import openai, anthropic  # imported after init: instrumented when the import finishes
    print(hasattr(openai.resources.chat.Completions.create, "__sightline_wrapped__"),
          hasattr(anthropic.resources.Messages.create, "__sightline_wrapped__"))
""")


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", APP], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_installed_libraries_are_instrumented_when_imported_later() -> None:
    assert _run({}) == "True True"


def test_instrument_from_the_environment() -> None:
    assert _run({"SIGHTLINE_INSTRUMENT": "false"}) == "False False"
    assert _run({"SIGHTLINE_INSTRUMENT": "anthropic"}) == "False True"


def _opts(**kw: object) -> object:
    base: dict[str, object] = dict(
        endpoint=None,
        api_key=None,
        service_name=None,
        service_version=None,
        environment=None,
        sample_rate=None,
        capture_content=None,
        redact=None,
    )
    base.update(kw)
    return resolve_options(**base)  # type: ignore[arg-type]


def test_bad_instrument_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown libraries"):
        _opts(instrument=["cohere"])
    monkeypatch.setenv("SIGHTLINE_INSTRUMENT", "openai,nope")
    with pytest.raises(ValueError, match="unknown libraries"):
        _opts()


@pytest.mark.parametrize("bad", ["127.0.0.1:7600", "localhost", "ftp://host:7600", "http://"])
def test_an_endpoint_the_exporter_could_not_send_to_is_refused(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a scheme every export failed later ("No connection adapters"), far from init."""
    with pytest.raises(ValueError, match="endpoint must be an http"):
        _opts(endpoint=bad)
    monkeypatch.setenv("SIGHTLINE_ENDPOINT", bad)
    with pytest.raises(ValueError, match="endpoint must be an http"):
        _opts()


def test_the_otlp_traces_url_names_the_server_too() -> None:
    """The README's OpenTelemetry setup names .../v1/traces: the exporter appended it again."""
    for given in ("http://127.0.0.1:7600/v1/traces", "http://127.0.0.1:7600/v1/traces/ ",
                  "http://127.0.0.1:7600/"):  # fmt: skip
        assert _opts(endpoint=given).endpoint == "http://127.0.0.1:7600"  # type: ignore[attr-defined]
    assert _opts(endpoint="https://sl.example/base").endpoint == "https://sl.example/base"  # type: ignore[attr-defined]


def test_log_requests_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _opts().log_requests  # type: ignore[attr-defined]
    monkeypatch.setenv("SIGHTLINE_LOG_REQUESTS", "1")
    assert _opts().log_requests  # type: ignore[attr-defined]


TWICE = textwrap.dedent("""
    import json
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    sightline.init(span_exporter=first, instrument=False)
    with sightline.span("before"):
        pass
    sightline.init(span_exporter=first, instrument=False)  # the same setup run again
    with sightline.trace("same", user_id="u1"):
        pass
    sightline.init(span_exporter=second, instrument=False)  # a new exporter replaces it
    with sightline.trace("replaced", user_id="u2"):
        pass
    sightline.shutdown()
    print(json.dumps({
        "first": sorted(s.name for s in first.get_finished_spans()),
        "second": [[s.name, s.attributes.get("sightline.user_id")]
                   for s in second.get_finished_spans()],
    }))
""")


def test_init_called_again_exports_each_span_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", TWICE], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "first": ["before", "same"],
        "second": [["replaced", "u2"]],
    }


FORKED = textwrap.dedent("""
    import http.server, json, multiprocessing, threading
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    import sightline

    got = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                for ss in rs.scope_spans:
                    got.extend(s.name for s in ss.spans)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sightline.init(endpoint=f"http://127.0.0.1:{srv.server_address[1]}", instrument=False,
                   check_budgets=False)

    def work(i):
        with sightline.span(f"child-{i}"):
            pass
        return i

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("fork")
        p = ctx.Process(target=work, args=(1,))
        p.start()
        p.join()
        pool = ctx.Pool(2)
        pool.map(work, [2, 3])
        pool.close()
        pool.join()
        sightline.shutdown()
        print(json.dumps(sorted(got)))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_spans_of_forked_multiprocessing_children_are_sent() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", FORKED], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    # a forked child leaves through os._exit: without a flush, its spans were lost
    assert json.loads(proc.stdout) == ["child-1", "child-2", "child-3"]


REINIT = textwrap.dedent("""
    import json, sys, time
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    class Printing(InMemorySpanExporter):
        def __init__(self, delay_s):
            super().__init__()
            self.delay_s = delay_s

        def export(self, spans):
            time.sleep(self.delay_s)
            print(json.dumps(["exported", sorted(s.name for s in spans)]), flush=True)
            return super().export(spans)

    first, second = Printing(0.5), Printing(0.0)  # the first collector is slow to answer
    case = sys.argv[1]
    if case == "queued":
        # the app exits right after its second init: the first one's queue must still leave
        sightline.init(span_exporter=first, instrument=False, check_budgets=False)
        with sightline.span("before"):
            pass
        sightline.init(span_exporter=second, instrument=False, check_budgets=False)
        with sightline.span("after"):
            pass
    elif case == "open-trace":
        # an unsampled trace, open across the second init, with a span that failed before it
        sightline.init(span_exporter=first, instrument=False, sample_rate=0.0)
        with sightline.trace("root"):
            try:
                with sightline.span("failing"):
                    raise RuntimeError("boom")
            except RuntimeError:
                pass
            sightline.init(span_exporter=second, instrument=False, sample_rate=0.0)
    elif case == "rate":
        # the second init's sample rate applies (it was the first one's, 0: nothing exported)
        sightline.init(span_exporter=first, instrument=False, sample_rate=0.0)
        sightline.init(span_exporter=second, instrument=False, sample_rate=1.0)
        for i in range(3):
            with sightline.trace(f"t{i}"):
                pass
""")


def _exported(case: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", REINIT, case], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    names = [n for line in proc.stdout.splitlines() for n in json.loads(line)[1]]
    return sorted(names)


class TestInitCalledAgain:
    def test_spans_queued_by_the_first_init_are_sent_at_exit(self) -> None:
        assert _exported("queued") == ["after", "before"]

    def test_an_open_unsampled_trace_keeps_its_failed_span(self) -> None:
        assert _exported("open-trace") == ["failing", "root"]

    def test_the_new_sample_rate_applies(self) -> None:
        assert _exported("rate") == ["t0", "t1", "t2"]

    def test_the_new_service_name_version_and_environment_apply(self) -> None:
        # the provider of the first init was reused with its resource: the second init's
        # service name, version and environment were silently ignored
        from sightline.testing import FakeProvider

        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
        with FakeProvider(reply="ok") as fake:
            proc = subprocess.run(
                [sys.executable, "-c", REINIT_IDENTITY, fake.openai_base_url],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert proc.returncode == 0, proc.stderr
        first, second = (json.loads(line) for line in proc.stdout.splitlines())
        assert first == [["chat gpt-4o-mini", "module", None, "staging"]]
        assert second == [["chat gpt-4o-mini", "worker", "2.0", "prod"]]


REINIT_IDENTITY = textwrap.dedent("""
    import json, sys
    import openai
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import sightline

    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)

    def call():
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    def shown(exporter):
        sightline.shutdown()
        return [[s.name, s.resource.attributes.get("service.name"),
                 s.resource.attributes.get("service.version"),
                 s.resource.attributes.get("deployment.environment.name")]
                for s in exporter.get_finished_spans()]

    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    sightline.init(span_exporter=first, service_name="module", environment="staging")
    call()
    print(json.dumps(shown(first)))
    sightline.init(span_exporter=second, service_name="worker", service_version="2.0",
                   environment="prod")
    call()
    print(json.dumps(shown(second)))
""")


FORKED_SERVER_DOWN = textwrap.dedent("""
    import json, multiprocessing, os, socket, sys, time
    import sightline

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: the server is down
    sightline.init(endpoint=f"http://127.0.0.1:{port}", instrument=False, check_budgets=False)

    def work(n):
        for i in range(n):
            with sightline.span(f"child-{i}"):
                pass

    def timed(start):
        t = time.perf_counter()
        start()
        return round(time.perf_counter() - t, 2)

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("fork")
        out = {}
        for n in (0, 1):
            p = ctx.Process(target=work, args=(n,))
            out[f"process-{n}"] = timed(lambda: (p.start(), p.join()))

        def gunicorn_like(n):
            pid = os.fork()
            if pid == 0:  # a worker leaving through sys.exit: atexit handlers run
                work(n)
                sys.exit(0)
            os.waitpid(pid, 0)

        for n in (0, 1):
            out[f"sys-exit-{n}"] = timed(lambda: gunicorn_like(n))
        print(json.dumps(out), flush=True)
        os._exit(0)  # the parent's own exit is not what is measured
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_exits_promptly_when_the_server_is_down() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", FORKED_SERVER_DOWN],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    took = json.loads(proc.stdout)
    # it waited 3 s (the main process's exit limit) for spans that could not leave
    assert took["process-1"] < 1.5 and took["sys-exit-1"] < 1.5, took
    # nothing pending: nothing to wait for
    assert took["process-0"] < 0.5 and took["sys-exit-0"] < 0.5, took
