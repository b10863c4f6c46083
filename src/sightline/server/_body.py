"""Read request bodies without trusting Content-Length or holding more than the limit."""

from __future__ import annotations

from fastapi import Request

from sightline.errors import PayloadTooLarge

__all__ = ["read_body"]


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; PayloadTooLarge as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
