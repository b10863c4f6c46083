"""``sightline.init``: send this application's spans to a Sightline server."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Sequence
from typing import Literal

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sightline.redact import RedactionPolicy
from sightline.sdk._budget import BudgetGuard, set_guard
from sightline.sdk._config import SdkOptions, _bool, _env, resolve_options
from sightline.sdk._errors import handle_internal_errors
from sightline.sdk._providers import instrument_installed, keep_span
from sightline.sdk._request_log import RequestLogProcessor
from sightline.sdk._sampling import (
    ConfiguredSampler,
    ErrorKeepingProcessor,
    copy_span,
    sampler_for,
)
from sightline.sdk._threads import instrument_threads
from sightline.sdk._tracing import _Content, add_trace_attributes, use_provider

__all__ = ["current_options", "dropped_spans", "init", "shutdown"]

Instrument = bool | Sequence[Literal["openai", "anthropic"]]

_lock = threading.Lock()


class _State:
    provider: TracerProvider | None = None
    options: SdkOptions | None = None
    exporting: list[_TracingExportProcessor] = []  # one process, one state
    request_log = False
    pid = 0
    """The process that called ``init`` (another one is a forked child)."""
    exit_hook = False
    fork_hook = False


_state = _State()


class _TracingExportProcessor(ErrorKeepingProcessor):
    """The exporting processor that also does ``TraceAttributesProcessor.on_start``."""

    def __init__(self, inner: BatchSpanProcessor, exporter: SpanExporter) -> None:
        super().__init__(inner, max_queue_size=_MAX_QUEUE_SPANS)
        self.exporter = exporter

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        if self.retired:
            return
        add_trace_attributes(span)
        if self._inner_on_start:
            self._inner.on_start(span, parent_context)


_MAX_QUEUE_SPANS = 4096
# At exit the app waits at most this long for the last spans to leave (a hanging collector
# must not hold the process): OpenTelemetry's own default is 30 s.
_EXIT_TIMEOUT_S = 3.0
# A forked child (a multiprocessing or gunicorn worker) waits less: workers exit in numbers,
# and their parent (a pool's join, a graceful reload) waits on each. One batch to a collector
# that answers takes milliseconds; one that is down (the exporter backs off ~1 s after a
# refused connection) or hanging would hold every exit for the whole limit.
_CHILD_EXIT_TIMEOUT_S = 0.5


_IDENTITY_KEYS = ("service.name", "service.version", "deployment.environment.name")


def _identity(opts: SdkOptions) -> dict[str, str]:
    """The resource attributes that ``init``'s options set."""
    attrs: dict[str, str] = {"service.name": opts.service_name}
    if opts.service_version:
        attrs["service.version"] = opts.service_version
    if opts.environment:
        attrs["deployment.environment.name"] = opts.environment
    return attrs


def _resource_with(resource: Resource, opts: SdkOptions) -> Resource:
    """``resource`` with the service name, version and environment of ``opts`` instead."""
    kept = {k: v for k, v in resource.attributes.items() if k not in _IDENTITY_KEYS}
    return Resource({**kept, **_identity(opts)}, resource.schema_url)


class _ResourceExporter(SpanExporter):
    """Exports spans with another resource: a provider's own resource is fixed once created."""

    def __init__(self, inner: SpanExporter, resource: Resource) -> None:
        self.inner = inner
        self.resource = resource

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._rebuilt(s) for s in spans])

    def _rebuilt(self, span: ReadableSpan) -> ReadableSpan:
        return copy_span(span, resource=self.resource)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def init(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    sample_rate: float | None = None,
    capture_content: bool | None = None,
    redact: Callable[[str], str] | str | RedactionPolicy | None = None,
    instrument: Instrument | None = None,
    log_requests: bool | None = None,
    propagate_threads: bool = True,
    span_exporter: SpanExporter | None = None,
    check_budgets: bool | None = None,
    budget_cache_s: float = 5.0,
) -> SdkOptions:
    """Export this process's spans to Sightline over OTLP/HTTP, off the request path.

    Every argument falls back to an environment variable (``SIGHTLINE_ENDPOINT``,
    ``SIGHTLINE_API_KEY``, ``SIGHTLINE_SERVICE_NAME``, ``SIGHTLINE_SERVICE_VERSION``,
    ``SIGHTLINE_ENVIRONMENT``, ``SIGHTLINE_SAMPLE_RATE``, ``SIGHTLINE_CAPTURE_CONTENT``,
    ``SIGHTLINE_INSTRUMENT``, ``SIGHTLINE_LOG_REQUESTS``), then to the standard
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME``. When the application already set
    up an OpenTelemetry ``TracerProvider``, Sightline adds its exporter to it rather than
    replacing it.

    Args:
        endpoint: Base URL of the Sightline server (``http://127.0.0.1:7600``).
        api_key: The project's API key, sent as a bearer token.
        service_name: ``service.name`` of the spans.
        service_version: ``service.version`` of the spans.
        environment: ``deployment.environment.name`` of the spans.
        sample_rate: Fraction of traces exported (per trace; traces ending in error always are).
        capture_content: Record prompts, responses and documents (False keeps only metadata).
        redact: Redaction of every recorded text before it leaves the process: ``"default"``
            (mask emails, phones, cards, IBANs, national ids, IPs and secrets, as the server
            does), a :class:`sightline.redact.RedactionPolicy`, or any ``str -> str`` function.
        instrument: Which LLM client libraries to instrument: True (default) for every one that
            is installed (``openai``, ``anthropic``), a list of names, or False for none.
        log_requests: Also write one structured log line per LLM request (off by default).
        propagate_threads: Carry the trace context into threads and thread pools started inside
            a trace (``threading.Thread``, ``concurrent.futures.ThreadPoolExecutor``).
        span_exporter: Export to this exporter instead of OTLP (tests, benchmarks).
        check_budgets: Ask the server's ``/api/v1/budgets/check`` before each LLM call and
            raise :class:`sightline.BudgetExceeded` instead of calling the provider when a hard
            budget is spent (``SIGHTLINE_CHECK_BUDGETS``; default: on, unless
            ``span_exporter`` is given). Fail-open: an unreachable server lets calls go ahead.
        budget_cache_s: How long a budget answer is reused (per user, tenant, feature, model).

    Example:
        ```python
        import sightline

        sightline.init(api_key="sl_...", service_name="support-bot")
        ```

    Raises:
        ValueError: an argument or environment variable is invalid (raised at start-up, the
            one time the SDK raises: a misconfiguration should not pass silently).
    """
    opts = resolve_options(
        endpoint=endpoint,
        api_key=api_key,
        service_name=service_name,
        service_version=service_version,
        environment=environment,
        sample_rate=sample_rate,
        capture_content=capture_content,
        redact=redact,
        instrument=instrument,
        log_requests=log_requests,
    )
    span_exporter_given = span_exporter is not None
    with _lock:
        _Content.capture = opts.capture_content
        _Content.max_chars = opts.max_content_chars
        _Content.redact = opts.redact
        if span_exporter is None:
            headers = {"authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
            span_exporter = OTLPSpanExporter(
                endpoint=f"{opts.endpoint}/v1/traces", headers=headers, timeout=5
            )
        current = otel_trace.get_tracer_provider()
        exported_by: SpanExporter = span_exporter
        if isinstance(current, TracerProvider) and isinstance(current.sampler, ConfiguredSampler):
            # init called again on the provider an earlier init made: its resource cannot
            # change, so the new service name, version and environment are set on each span as
            # it leaves (an app's own provider keeps its own resource)
            resource = _resource_with(current.resource, opts)
            if resource.attributes != current.resource.attributes:
                exported_by = _ResourceExporter(span_exporter, resource)
        # A bounded queue: when the server is down or slow, spans beyond it are dropped (and
        # counted), never buffered without limit or waited for.
        batch = BatchSpanProcessor(
            exported_by,
            max_queue_size=_MAX_QUEUE_SPANS,
            schedule_delay_millis=1000,
            export_timeout_millis=5000,
        )
        if isinstance(current, TracerProvider):
            provider = current
            if isinstance(provider.sampler, ConfiguredSampler):
                # init called again: its sample rate applies (an app's own sampler is kept)
                provider.sampler.delegate = sampler_for(opts.sample_rate)
        else:
            provider = TracerProvider(
                resource=Resource.create(_identity(opts)),
                sampler=ConfiguredSampler(sampler_for(opts.sample_rate)),
            )
            otel_trace.set_tracer_provider(provider)
            if otel_trace.get_tracer_provider() is not provider:  # someone set it first
                got = otel_trace.get_tracer_provider()
                if isinstance(got, TracerProvider):
                    provider = got
        if opts.log_requests and not _state.request_log:
            provider.add_span_processor(RequestLogProcessor())
            _state.request_log = True
        # Traces the sample rate leaves out are recorded anyway; those that end in error are
        # exported all the same. (An app's own provider keeps its own sampler.) It also copies
        # the trace attributes at start (TraceAttributesProcessor's work): one processor less
        # on every span's start and end.
        exporting = _TracingExportProcessor(batch, span_exporter)
        exporting.set_filter(keep_span)
        provider.add_span_processor(exporting)
        use_provider(provider)
        # init called again (a re-import, a worker's setup after the module's): the new options
        # replace the old ones, and each span is exported once, not once per init
        for old in _state.exporting:
            if not old.retired:
                old.retire(shutdown=old.exporter is not span_exporter, successor=exporting)
        _state.exporting.append(exporting)
        _state.provider = provider
        _state.options = opts
        _state.pid = os.getpid()
        if not _state.exit_hook:
            # Registered after the provider's own handler, so it runs first (atexit is LIFO).
            atexit.register(_at_exit)
            _state.exit_hook = True
        if not _state.fork_hook:
            _state.fork_hook = True
            with handle_internal_errors("fork_hook"):
                _register_after_fork()
    if check_budgets is None:
        check_budgets = _bool(_env("SIGHTLINE_CHECK_BUDGETS"), span_exporter_given is False)
    set_guard(
        BudgetGuard(opts.endpoint, opts.api_key, cache_s=budget_cache_s, flush=_flush_for_budget)
        if check_budgets
        else None
    )
    if propagate_threads:
        with handle_internal_errors("instrument_threads"):
            instrument_threads()
    with handle_internal_errors("instrument"):
        instrument_installed(opts.instrument)
    return opts


def current_options() -> SdkOptions:
    """The options of the last ``init``, or those from the environment alone."""
    if _state.options is not None:
        return _state.options
    return resolve_options(
        endpoint=None,
        api_key=None,
        service_name=None,
        service_version=None,
        environment=None,
        sample_rate=None,
        capture_content=None,
        redact=None,
    )


def dropped_spans() -> int:
    """Spans dropped so far because the export queue was full (the collector down or slow)."""
    return sum(p.dropped for p in _state.exporting)


def shutdown(timeout_s: float = 5.0) -> None:
    """Flush pending spans, waiting at most ``timeout_s`` (a hanging collector cannot hold it).

    Called at exit too (when spans are pending), with a 3 s limit; 0.5 s in a forked child.
    """
    provider = _state.provider
    if provider is None:
        return
    # force_flush does not honour its timeout when the collector hangs: run it aside.
    t = threading.Thread(
        target=provider.force_flush,
        args=(int(timeout_s * 1000),),
        name="sightline-flush",
        daemon=True,
    )
    t.start()
    t.join(timeout_s)


def _flush_for_budget() -> None:
    """Before a budget check that must be exact: this process's ended spans reach the server."""
    provider = _state.provider
    if provider is not None:
        provider.force_flush(5000)


def _pending() -> bool:
    """Whether this process has spans still to export (nothing to wait for otherwise)."""
    return any(p.has_pending() for p in _state.exporting)


def _at_exit() -> None:
    with handle_internal_errors("exit"):
        forked = os.getpid() != _state.pid
        if _pending():
            shutdown(_CHILD_EXIT_TIMEOUT_S if forked else _EXIT_TIMEOUT_S)
        for p in _state.exporting:
            p.shutdown_within(0.1)


def _register_after_fork() -> None:
    """Flush in a ``multiprocessing`` child too: it leaves through ``os._exit``, not atexit.

    A forked ``Process`` or ``Pool`` worker never runs atexit handlers, so the spans of its last
    second (the batch's delay) were lost. multiprocessing runs its finalizers there instead.
    """
    from multiprocessing import util

    util.register_after_fork(_state, _after_fork_in_child)


def _after_fork_in_child(_: object) -> None:
    from multiprocessing import util

    util.Finalize(None, _flush_in_child, exitpriority=0)


def _flush_in_child() -> None:
    with handle_internal_errors("exit"):
        if _pending():
            shutdown(_CHILD_EXIT_TIMEOUT_S)
