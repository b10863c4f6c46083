"""``sightline.feedback``: send an end user's judgement of an answer, without blocking."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from sightline.sdk._errors import failure_reason, handle_internal_errors, logger

__all__ = ["feedback"]


def _send(
    url: str,
    api_key: str | None,
    payload: dict[str, object],
    timeout_s: float,
    what: str = "feedback",
) -> None:
    with handle_internal_errors(what):
        req = urllib.request.Request(  # noqa: S310 - the URL is the configured endpoint
            url,
            # an app's metadata may hold dates, decimals, UUIDs: sent as their text
            data=json.dumps(payload, default=str).encode(),
            method="POST",
            headers={
                "content-type": "application/json",
                **({"authorization": f"Bearer {api_key}"} if api_key else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as e:
            # the server's message says what was wrong ("score: Input should be ... 1")
            logger.warning("sightline %s not delivered: %s", what, failure_reason(e))


def feedback(
    trace_id: str | int | None = None,
    *,
    span_id: str | int | None = None,
    score: float,
    comment: str | None = None,
    user_id: str | None = None,
    wait: bool = False,
) -> threading.Thread | None:
    """Record end-user feedback (``score`` 1 = thumbs up, -1 = down) on a trace or a span.

    Sent in a background thread so the app never waits on Sightline; ``wait=True`` sends it
    before returning (for scripts and tests). Ids are hex strings or OpenTelemetry's ints.

    Example:
        ```python
        with sightline.trace("rag-request") as root:
            answer = pipeline(question)
        trace_id = root.otel.get_span_context().trace_id
        ...  # later, when the user clicks thumbs-down:
        sightline.feedback(trace_id, score=-1, comment="wrong refund period")
        ```
    """
    from sightline.sdk._init import current_options

    opts = current_options()
    payload: dict[str, object] = {"score": score}
    if trace_id is not None:
        payload["trace_id"] = format(trace_id, "032x") if isinstance(trace_id, int) else trace_id
    if span_id is not None:
        payload["span_id"] = format(span_id, "016x") if isinstance(span_id, int) else span_id
    if comment is not None:
        payload["comment"] = comment
    if user_id is not None:
        payload["user_id"] = user_id
    args = (f"{opts.endpoint}/api/v1/feedback", opts.api_key, payload, 5.0)
    if wait:
        _send(*args)
        return None
    t = threading.Thread(target=_send, args=args, name="sightline-feedback", daemon=True)
    t.start()
    return t
