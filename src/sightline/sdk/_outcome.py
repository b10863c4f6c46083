"""``sightline.outcome``: report what a trace or a session led to, without blocking."""

from __future__ import annotations

import threading
from typing import Any

from sightline.sdk._feedback import _send

__all__ = ["outcome"]


def outcome(
    trace_id: str | int | None = None,
    *,
    session_id: str | None = None,
    name: str,
    value: float = 1.0,
    user_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    wait: bool = False,
) -> threading.Thread | None:
    """Record a business outcome of a trace or a session (``POST /api/v1/outcomes``).

    ``name`` is what happened (``converted``, ``task_completed``, ``ticket_resolved``...);
    ``value`` > 0 a success or an amount, <= 0 a failure. Sent in a background thread so the
    app never waits on Sightline; ``wait=True`` sends it before returning. Never raises: an
    outcome that cannot be delivered is logged and dropped.

    Example:
        ```python
        with sightline.trace("checkout-assistant", session_id=cart.session_id):
            reply = assistant(question)
        ...  # later, when the order is paid:
        sightline.outcome(session_id=cart.session_id, name="converted", value=1)
        ```
    """
    from sightline.sdk._init import current_options

    opts = current_options()
    payload: dict[str, object] = {"name": name, "value": value}
    if trace_id is not None:
        payload["trace_id"] = format(trace_id, "032x") if isinstance(trace_id, int) else trace_id
    if session_id is not None:
        payload["session_id"] = session_id
    if user_id is not None:
        payload["user_id"] = user_id
    if metadata:
        payload["metadata"] = metadata
    args = (f"{opts.endpoint}/api/v1/outcomes", opts.api_key, payload, 5.0, "outcome")
    if wait:
        _send(*args)
        return None
    t = threading.Thread(target=_send, args=args, name="sightline-outcome", daemon=True)
    t.start()
    return t
