"""Exceptions raised by Sightline.

The tree::

    SightlineError
    ├── ConfigError (also ValueError)      bad settings, price files, CLI input
    ├── IngestError                        a payload that cannot be decoded at all
    │   ├── PayloadTooLarge                body over the configured limit (413)
    │   └── UnsupportedMediaType           content type we do not read (415)
    ├── StoreError                         the trace store failed
    │   └── Overloaded                     the writer queue is full; retry later (503)
    │       └── StoreUnavailable           the store cannot write now (disk full...); retry (503)
    ├── RequestTimeout                     the request body stopped arriving (408)
    ├── AuthError                          missing or unknown API key (401)
    │   └── TooManyRequests                too many failed authentications (429)
    ├── Forbidden                          the key's role does not allow this (403)
    ├── NotFound                           a resource that does not exist (404)
    ├── Conflict                           a change the resource's state forbids (409)
    ├── NotifyError                        an alert notification could not be sent
    └── PromptUnavailable                  get_prompt had no version, cache nor fallback
    └── BudgetExceeded                     a hard budget limit is reached (429); the SDK raises
                                           it instead of calling the provider

Server-side errors carry an HTTP ``status`` so one handler can render them.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IngestError",
    "NotFound",
    "NotifyError",
    "Overloaded",
    "PayloadTooLarge",
    "PromptUnavailable",
    "RequestTimeout",
    "SightlineError",
    "StoreError",
    "StoreUnavailable",
    "TooManyRequests",
    "UnstorableBatch",
    "UnsupportedMediaType",
]


class SightlineError(Exception):
    """Root of every error Sightline raises on purpose."""

    status: int = 500
    code: str = "internal_error"


class ConfigError(SightlineError, ValueError):
    """A setting, file or argument given by the user is invalid."""

    status = 400
    code = "invalid_config"


class IngestError(SightlineError):
    """A telemetry payload could not be decoded."""

    status = 400
    code = "invalid_payload"


class PayloadTooLarge(IngestError):
    """The request body (after decompression) is larger than allowed."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(IngestError):
    """The request's content type or encoding is not one Sightline reads."""

    status = 415
    code = "unsupported_media_type"


class StoreError(SightlineError):
    """The trace store failed to read or write."""

    status = 500
    code = "store_error"


class Overloaded(StoreError):
    """The write queue is full: the client should retry after ``retry_after_s``."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreUnavailable(Overloaded):
    """The store failed to commit (disk full, read-only, gone): nothing of the request was kept.

    Like :class:`Overloaded` it is answered 503 with ``Retry-After``; the writer keeps probing
    the store and ingestion resumes by itself once a write succeeds again.
    """

    code = "store_unavailable"


class UnstorableBatch(StoreError):
    """The store refused a batch for what it holds (a constraint, a value it cannot convert).

    The request's fault, not the store's: answered 400 (exporters do not retry it), and the
    other requests of the same commit are committed without it.
    """

    status = 400
    code = "unstorable_batch"


class RequestTimeout(SightlineError):
    """The request body stopped arriving (no byte for a while, or too slow as a whole).

    Answered 408 and the connection is closed; what was received is dropped.
    """

    status = 408
    code = "request_timeout"


class AuthError(SightlineError):
    """The request has no API key, or one Sightline does not know."""

    status = 401
    code = "unauthorized"


class TooManyRequests(AuthError):
    """Too many failed authentications from this address: retry after ``retry_after_s``."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Forbidden(SightlineError):
    """The API key is valid but its role does not allow the request."""

    status = 403
    code = "forbidden"


class NotFound(SightlineError):
    """The requested resource does not exist (or is not visible to this key)."""

    status = 404
    code = "not_found"


class Conflict(SightlineError):
    """The change conflicts with the resource's state (e.g. editing a rule owned by a file)."""

    status = 409
    code = "conflict"


class NotifyError(SightlineError):
    """A notifier could not deliver (refused address, HTTP error, SMTP failure)."""

    status = 502
    code = "notify_failed"


class PromptUnavailable(SightlineError):
    """``sightline.get_prompt`` could not fetch the prompt and had no cached copy nor fallback."""

    status = 404
    code = "prompt_unavailable"


class BudgetExceeded(SightlineError):
    """A budget with a hard limit is spent: the call was not made.

    Raised by the SDK's instrumented clients before the provider is called (and answered as
    429 by the gateway). ``budget`` names the budget, ``limit_usd`` and ``spent_usd`` are its
    figures when the decision was made.
    """

    status = 429
    code = "budget_exceeded"

    def __init__(
        self, message: str, *, budget: str = "", limit_usd: float = 0.0, spent_usd: float = 0.0
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
