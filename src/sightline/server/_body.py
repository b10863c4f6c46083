"""Read request bodies without trusting Content-Length, a slow client or a crowd of them.

:func:`read_body` holds at most ``max_bytes`` of one body. :class:`BodyGuard` (in
:mod:`sightline._bodyguard`, shared with the standalone gateway), around the whole app, bounds
how long a body may take to arrive (a client that stops sending gets 408 and its connection
closed, instead of holding the connection and what it sent forever) and how many bytes of
bodies the server holds at once over all requests (past it: 503 with ``Retry-After``, which
OTLP exporters retry).
"""

from __future__ import annotations

from fastapi import Request

from sightline._bodyguard import BodyGuard
from sightline.errors import PayloadTooLarge

__all__ = ["BodyGuard", "read_body"]


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; PayloadTooLarge as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > max_bytes)
    ):
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
