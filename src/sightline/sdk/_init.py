"""``sightline.init``: send this application's spans to a Sightline server."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from sightline.sdk._config import SdkOptions, resolve_options
from sightline.sdk._sampling import ErrorKeepingProcessor, sampler_for
from sightline.sdk._tracing import TraceAttributesProcessor, _Content

__all__ = ["current_options", "init", "shutdown"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def init(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    sample_rate: float | None = None,
    capture_content: bool | None = None,
    redact: Callable[[str], str] | None = None,
) -> SdkOptions:
    """Export this process's spans to Sightline over OTLP/HTTP, off the request path.

    Every argument falls back to an environment variable (``SIGHTLINE_ENDPOINT``,
    ``SIGHTLINE_API_KEY``, ``SIGHTLINE_SERVICE_NAME``, ``SIGHTLINE_SERVICE_VERSION``,
    ``SIGHTLINE_ENVIRONMENT``, ``SIGHTLINE_SAMPLE_RATE``, ``SIGHTLINE_CAPTURE_CONTENT``), then
    to the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME``. When the
    application already set up an OpenTelemetry ``TracerProvider``, Sightline adds its exporter
    to it rather than replacing it.

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
    )
    with _lock:
        _Content.capture = opts.capture_content
        _Content.max_chars = opts.max_content_chars
        _Content.redact = opts.redact
        headers = {"authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
        exporter = OTLPSpanExporter(
            endpoint=f"{opts.endpoint}/v1/traces", headers=headers, timeout=5
        )
        # A bounded queue: when the server is down or slow, spans beyond it are dropped (and
        # counted by the processor), never buffered without limit or waited for.
        processor = BatchSpanProcessor(
            exporter, max_queue_size=4096, schedule_delay_millis=1000, export_timeout_millis=5000
        )
        current = otel_trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            attrs: dict[str, str] = {"service.name": opts.service_name}
            if opts.service_version:
                attrs["service.version"] = opts.service_version
            if opts.environment:
                attrs["deployment.environment.name"] = opts.environment
            provider = TracerProvider(
                resource=Resource.create(attrs), sampler=sampler_for(opts.sample_rate)
            )
            otel_trace.set_tracer_provider(provider)
            if otel_trace.get_tracer_provider() is not provider:  # someone set it first
                got = otel_trace.get_tracer_provider()
                if isinstance(got, TracerProvider):
                    provider = got
        old = _state.get("processors")
        if not old:
            provider.add_span_processor(TraceAttributesProcessor())
        # Traces the sample rate leaves out are recorded anyway; those that end in error are
        # exported all the same. (An app's own provider keeps its own sampler.)
        provider.add_span_processor(ErrorKeepingProcessor(processor))
        _state["processors"] = [processor]
        _state["provider"] = provider
        _state["options"] = opts
    return opts


def current_options() -> SdkOptions:
    """The options of the last ``init``, or those from the environment alone."""
    opts = _state.get("options")
    if isinstance(opts, SdkOptions):
        return opts
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


def shutdown(timeout_s: float = 5.0) -> None:
    """Flush pending spans (at most ``timeout_s``); called at exit by OpenTelemetry too."""
    provider = _state.get("provider")
    if isinstance(provider, TracerProvider):
        provider.force_flush(int(timeout_s * 1000))
