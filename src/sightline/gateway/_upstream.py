"""A lean HTTP/1.1 client for the gateway's calls to its upstreams.

``httpx`` costs the gateway ~60% of its CPU per forwarded call (its models, ``httpcore``'s pool,
``anyio`` streams, the pure-Python ``h11`` parser): most of the latency a call adds. This client
does only what the gateway needs, on asyncio protocols with the ``httptools`` parser (the C parser
uvicorn uses, a dependency of ``uvicorn[standard]``): one ``POST`` on a kept-alive connection,
the whole body read, or its body streamed chunk by chunk as it arrives; TLS for ``https``. Errors
are raised as the matching ``httpx`` exceptions, so callers handle both clients alike.

It does not do proxies: with a proxy configured in the environment the gateway keeps ``httpx``
(see :func:`proxy_configured`).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools
import httpx

__all__ = [
    "FastClient",
    "ResponseTooLarge",
    "UpstreamResponse",
    "proxy_configured",
    "read_capped",
]

_MAX_IDLE_PER_HOST = 200
_PAUSE_BYTES = 1 << 20  # stop reading a streamed body while this much waits unread


class ResponseTooLarge(Exception):  # noqa: N818 - reads as what happened, like httpx's
    """An upstream's body passed the most the gateway reads of one answer (``max_bytes``).

    Not an ``httpx.HTTPError``: the upstream answered, so it is no reason to fail over.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the upstream's answer is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


async def read_capped(r: httpx.Response, max_bytes: int) -> bytes:
    """The (decoded) body of a streamed ``httpx`` response, closing it past ``max_bytes``.

    Raises:
        ResponseTooLarge: the body passed ``max_bytes``; the connection is closed.
    """
    parts = []
    size = 0
    try:
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(max_bytes)
            parts.append(chunk)
    finally:
        await r.aclose()
    return b"".join(parts)


def proxy_configured() -> bool:
    """Whether the environment names an HTTP(S) proxy (``httpx`` honours it; this client not)."""
    p = urllib.request.getproxies()
    return bool(p.get("http") or p.get("https") or p.get("all"))


class _Conn(asyncio.Protocol):
    """One connection to an upstream; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: Exception | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected upgrade from the upstream"))
        except httptools.HttpParserError as e:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP from the upstream: {e}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if not self.got_bytes:
                self.error = httpx.RemoteProtocolError("the upstream closed the connection")
            elif (
                self.headers_done
                and exc is None
                and "content-length" not in self.headers
                and "chunked" not in self.headers.get("transfer-encoding", "").lower()
            ):
                self.complete = True  # a body without a length ends with the connection
            else:
                self.error = httpx.ReadError(
                    f"the upstream closed the connection mid-response ({exc or 'eof'})"
                )
        self._wake()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        k = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        old = self.headers.get(k)
        self.headers[k] = v if old is None else f"{old}, {v}"

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self.headers = {}
            return
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_BYTES and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # valid only in the callback
        self._wake()

    # -- use -----------------------------------------------------------------------------------

    def _fail(self, e: Exception) -> None:
        self.error = e
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout_s: float | None) -> None:
        """Until the parser has news (headers, body, the end, or an error)."""
        w = self._waiter = self.loop.create_future()
        if timeout_s is None:
            await w
            return
        handle = self.loop.call_later(timeout_s, self._timeout, w)
        try:
            await w
        finally:
            handle.cancel()

    def _timeout(self, w: asyncio.Future[None]) -> None:
        if not w.done():
            w.set_exception(httpx.ReadTimeout("the upstream did not answer in time"))

    def take(self) -> bytes:
        out = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body = []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return out

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """An upstream's answer: ``status_code``, ``headers`` (lower-case names) and the body."""

    def __init__(self, client: FastClient, key: tuple[str, str, int], conn: _Conn, read_s: float):
        self._client = client
        self._key = key
        self._conn: _Conn | None = conn
        self._read_s = read_s
        self.status_code = conn.status
        self.headers: dict[str, str] = conn.headers
        self.content = b""

    async def aread(self, max_bytes: int | None = None) -> bytes:
        """Read the whole body (decompressed) and free the connection.

        Raises:
            ResponseTooLarge: the body, as sent or decompressed, passed ``max_bytes``; the
                connection is closed (what else the upstream sends is not read).
        """
        parts = []
        size = 0
        async for chunk in self.aiter_raw():
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                await self.aclose()
                raise ResponseTooLarge(max_bytes)
            parts.append(chunk)
        content = b"".join(parts)
        enc = self.headers.get("content-encoding", "").strip().lower()
        if enc in ("gzip", "deflate") and content:
            try:
                d = zlib.decompressobj(wbits=47 if enc == "gzip" else 15)
                # bounded: a few kB of gzip can inflate to gigabytes
                limit = 0 if max_bytes is None else max_bytes + 1
                out = d.decompress(content, limit)
                if max_bytes is not None and (len(out) > max_bytes or d.unconsumed_tail):
                    raise ResponseTooLarge(max_bytes)
                content = out + d.flush()
            except zlib.error as e:
                raise httpx.DecodingError(f"cannot decode the upstream's {enc} body: {e}") from e
            if max_bytes is not None and len(content) > max_bytes:
                raise ResponseTooLarge(max_bytes)
            del self.headers["content-encoding"]
        self.content = content
        return content

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (without the chunked framing), then the connection is freed."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                if conn.body:
                    yield conn.take()
                    continue
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self._read_s)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        self._conn = None
        self._client._release(self._key, conn)

    async def aclose(self) -> None:
        """Drop the connection unless the body was read to its end."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class FastClient:
    """Kept-alive connections per (scheme, host, port); ``post`` sends one request."""

    def __init__(self, *, user_agent: str = "sightline-gateway") -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._ua = user_agent
        self._split: dict[str, tuple[tuple[str, str, int], bytes, str]] = {}

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes, str]:
        hit = self._split.get(url)
        if hit is not None:
            return hit
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        default = port == (443 if u.scheme == "https" else 80)
        host = u.hostname if ":" not in u.hostname else f"[{u.hostname}]"
        hostport = host if default else f"{host}:{port}"
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        out = ((u.scheme, u.hostname, port), path.encode("ascii"), hostport)
        if len(self._split) > 1000:
            self._split.clear()
        self._split[url] = out
        return out

    async def _connect(self, key: tuple[str, str, int], connect_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
                self._ssl.set_alpn_protocols(["http/1.1"])
            ctx = self._ssl
        conn = _Conn(loop)
        try:
            async with asyncio.timeout(connect_s):
                await loop.create_connection(
                    lambda: conn, host, port, ssl=ctx, server_hostname=host if ctx else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as e:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {e}") from None
        return conn

    def _release(self, key: tuple[str, str, int], conn: _Conn) -> None:
        if conn.closed or conn.error is not None or not conn.keep_alive:
            conn.close()
            return
        conn._reset()
        idle = self._idle.setdefault(key, [])
        if len(idle) >= _MAX_IDLE_PER_HOST:
            conn.close()
            return
        idle.append(conn)

    async def post(
        self,
        url: str,
        content: bytes,
        headers: dict[str, str],
        *,
        timeout_s: float,
        connect_s: float,
        stream: bool = False,
        max_bytes: int | None = None,
    ) -> UpstreamResponse:
        """POST ``content``; the answer with its body read, or, ``stream``, still to read.

        ``timeout_s`` bounds each wait for the upstream (the headers, then every piece of the
        body), as ``httpx``'s read timeout does.

        Raises:
            ResponseTooLarge: not ``stream``, and the body passed ``max_bytes``.
        """
        key, path, hostport = self._target(url)
        lines = [b"POST ", path, b" HTTP/1.1\r\nhost: ", hostport.encode("idna"),
                 b"\r\nuser-agent: ", self._ua.encode(), b"\r\ncontent-length: ",
                 str(len(content)).encode(), b"\r\naccept-encoding: ",
                 b"identity" if stream else b"gzip, deflate", b"\r\n"]  # fmt: skip
        for k, v in headers.items():
            if "\r" in v or "\n" in v or "\r" in k or "\n" in k or ":" in k:
                raise httpx.LocalProtocolError(f"invalid header {k!r}")
            lines += (k.encode("latin-1"), b": ", v.encode("latin-1"), b"\r\n")
        lines += (b"\r\n", content)
        payload = b"".join(lines)
        for attempt in (0, 1):
            idle = self._idle.get(key)
            conn = None
            while idle:
                c = idle.pop()
                if not c.closed:
                    conn = c
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, connect_s)
            if conn.transport is None:  # pragma: no cover - set by create_connection
                raise httpx.ConnectError("no transport")
            conn.transport.write(payload)
            try:
                while not conn.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(timeout_s)
            except httpx.RemoteProtocolError:
                conn.close()
                # a kept-alive connection the upstream had closed before reading this request
                if reused and attempt == 0 and not conn.got_bytes:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            r = UpstreamResponse(self, key, conn, timeout_s)
            if not stream:
                await r.aread(max_bytes)
            return r
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
