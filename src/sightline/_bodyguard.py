"""Request-body deadlines and a cap on the body bytes held: :class:`BodyGuard`, an ASGI middleware.

Around the server's app (``sightline serve``) and the standalone gateway's (``sightline
gateway``): a client that stops sending its body gets 408 and its connection closed, instead
of holding the connection and what it sent forever, and the bytes of bodies held at once over
all requests are bounded (past it: 503 with ``Retry-After``). Depends on Starlette and
:mod:`sightline.errors` only, so the gateway loads it without the server.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sightline.errors import Overloaded, RequestTimeout

__all__ = ["BodyGuard"]


class BodyGuard:
    """ASGI middleware: read deadlines on request bodies, and a cap on the body bytes held.

    Every chunk of a request body the app receives is counted in :attr:`held` until the request
    is finished (answered, failed or dropped by the client): that is when the app lets go of
    the body and of what it decoded from it. A chunk that would take :attr:`held` past
    ``max_held_bytes`` fails the request with :class:`~sightline.errors.Overloaded` (503).

    While the body is being received, each ``receive()`` may wait ``idle_timeout_s`` for the
    next chunk, and the whole body may take ``total_timeout_s`` from the app's first read;
    past either the read fails with :class:`~sightline.errors.RequestTimeout` (408). Both
    errors are raised where the app reads, so its error handlers answer them, and the answer
    carries ``Connection: close``: the rest of that body is never read. Once the body is
    complete, ``receive()`` (a streaming answer waiting for the client to leave) is not timed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        idle_timeout_s: float,
        total_timeout_s: float,
        max_held_bytes: int,
    ) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_held_bytes = max_held_bytes
        self.held = 0
        """Bytes of request bodies received by requests not finished yet."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        mine = 0
        complete = False
        refused = False
        began: float | None = None

        async def guarded_receive() -> Message:
            nonlocal mine, complete, refused, began
            if complete:
                return await receive()
            now = time.monotonic()
            if began is None:
                began = now
            left = self.total_timeout_s - (now - began)
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(min(self.idle_timeout_s, left)):
                    message = await receive()
            except TimeoutError:
                complete = refused = True
                if left <= self.idle_timeout_s:
                    raise RequestTimeout(
                        f"the request body did not arrive within {self.total_timeout_s:g} s"
                    ) from None
                raise RequestTimeout(
                    f"no byte of the request body arrived for {self.idle_timeout_s:g} s"
                ) from None
            if message["type"] != "http.request":  # http.disconnect
                complete = True
                return message
            n = len(message.get("body", b""))
            if n:
                if self.held + n > self.max_held_bytes:
                    complete = refused = True
                    raise Overloaded(
                        "the server holds too many request bodies at once; retry later",
                        retry_after_s=1,
                    )
                self.held += n
                mine += n
            if not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            if refused and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            self.held -= mine
