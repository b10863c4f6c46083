"""SDK options: arguments, then SIGHTLINE_* environment variables, then the standard OTEL_*.

The SDK cannot use the server's pydantic Settings (it depends on OpenTelemetry only), so it
reads its few variables here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sightline.redact import RedactionPolicy, as_text_redactor

__all__ = ["SdkOptions", "resolve_options"]

DEFAULT_ENDPOINT = "http://127.0.0.1:7600"
SUPPORTED_LIBRARIES = ("openai", "anthropic")


@dataclass(frozen=True, slots=True)
class SdkOptions:
    """Resolved SDK settings."""

    endpoint: str
    api_key: str | None
    service_name: str
    service_version: str | None
    environment: str | None
    sample_rate: float
    capture_content: bool
    redact: Callable[[str], str] | None
    instrument: tuple[str, ...] = ()
    """The LLM client libraries to instrument (those of them that are installed)."""
    log_requests: bool = False
    max_content_chars: int = 65_536


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def _bool(v: str | None, default: bool) -> bool:
    if v is None:
        return default
    return v.strip().lower() not in ("0", "false", "no", "off")


def resolve_options(
    *,
    endpoint: str | None,
    api_key: str | None,
    service_name: str | None,
    service_version: str | None,
    environment: str | None,
    sample_rate: float | None,
    capture_content: bool | None,
    redact: Callable[[str], str] | str | RedactionPolicy | None,
    instrument: bool | Sequence[str] | None = None,
    log_requests: bool | None = None,
) -> SdkOptions:
    """Fill what the caller left out from the environment; raise ValueError on bad values."""
    rate = sample_rate
    if rate is None:
        raw = _env("SIGHTLINE_SAMPLE_RATE")
        try:
            rate = float(raw) if raw is not None else 1.0
        except ValueError:
            raise ValueError(f"SIGHTLINE_SAMPLE_RATE must be a number, got {raw!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample_rate must be between 0 and 1, got {rate}")
    libs = _instrument(instrument)
    return SdkOptions(
        endpoint=_endpoint(
            endpoint
            or _env("SIGHTLINE_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
            or DEFAULT_ENDPOINT
        ),
        api_key=api_key or _env("SIGHTLINE_API_KEY"),
        service_name=service_name
        or _env("SIGHTLINE_SERVICE_NAME", "OTEL_SERVICE_NAME")
        or "unknown_service",
        service_version=service_version or _env("SIGHTLINE_SERVICE_VERSION"),
        environment=environment or _env("SIGHTLINE_ENVIRONMENT"),
        sample_rate=rate,
        capture_content=capture_content
        if capture_content is not None
        else _bool(_env("SIGHTLINE_CAPTURE_CONTENT"), True),
        redact=as_text_redactor(redact) if redact is not None else None,
        instrument=libs,
        log_requests=log_requests
        if log_requests is not None
        else _bool(_env("SIGHTLINE_LOG_REQUESTS"), False),
    )


def _endpoint(url: str) -> str:
    """The server's base URL; ValueError for one the exporter could never send to.

    Without a scheme ("127.0.0.1:7600") every export failed later with "No connection
    adapters"; the OTLP traces URL (".../v1/traces", as the README's OpenTelemetry setup
    names it) became ".../v1/traces/v1/traces", a 404 on every export.
    """
    base = url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"endpoint must be an http:// or https:// URL such as {DEFAULT_ENDPOINT}, got {url!r}"
        )
    return base.removesuffix("/v1/traces")


def _instrument(value: bool | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        raw = _env("SIGHTLINE_INSTRUMENT")
        if raw is None or raw.strip().lower() in ("1", "true", "yes", "on", "all"):
            value = True
        elif raw.strip().lower() in ("0", "false", "no", "off", "none"):
            value = False
        else:
            value = [p.strip() for p in raw.split(",") if p.strip()]
    if value is True:
        return SUPPORTED_LIBRARIES
    if value is False:
        return ()
    if isinstance(value, str):
        value = [value]
    unknown = [v for v in value if v not in SUPPORTED_LIBRARIES]
    if unknown:
        raise ValueError(
            f"instrument: unknown libraries {unknown}; supported: {list(SUPPORTED_LIBRARIES)}"
        )
    return tuple(value)
