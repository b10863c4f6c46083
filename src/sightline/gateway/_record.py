"""Spans of gateway calls, sent to the Sightline server in batches, off the request path."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

__all__ = ["SpanRecorder"]

log = structlog.get_logger("sightline.gateway")

_MAX_QUEUE = 10_000
_MAX_BATCH = 500


class SpanRecorder:
    """Queues spans (native JSON) per Sightline API key; a task posts them every ``interval_s``.

    The queue is bounded: when the server is down or slow, spans beyond it are dropped and
    counted (``num_dropped``), never buffered without limit, and requests never wait for it.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        interval_s: float = 0.25,
        sender: Callable[[str, list[dict[str, Any]]], Awaitable[bool]] | None = None,
    ) -> None:
        self._url = (server or "").rstrip("/") + "/api/v1/spans"
        self._interval_s = interval_s
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._client = httpx.AsyncClient(timeout=10)
        self._sender = sender
        """Sends one key's spans in process (the gateway mounted in the server), else HTTP."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.num_sent = 0
        self.num_dropped = 0

    def add(self, api_key: str, span: dict[str, Any]) -> None:
        """Queue one span (dropped when the queue is full)."""
        if len(self._queue) >= _MAX_QUEUE:
            self.num_dropped += 1
            return
        self._queue.append((api_key, span))

    def start(self) -> None:
        """Start the sending task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send everything queued now."""
        while self._queue:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for key, span in batch:
                by_key[key].append(span)
            for key, spans in by_key.items():
                if self._sender is not None:
                    try:
                        ok = await self._sender(key, spans)
                    except Exception as e:  # a span batch must never kill the sending task
                        log.warning("gateway_spans_failed", error=str(e))
                        ok = False
                    if ok:
                        self.num_sent += len(spans)
                    else:
                        self.num_dropped += len(spans)
                    continue
                try:
                    r = await self._client.post(
                        self._url, json=spans, headers={"authorization": f"Bearer {key}"}
                    )
                    if r.status_code == 200:
                        self.num_sent += len(spans)
                        continue
                    log.warning("gateway_spans_refused", status=r.status_code, body=r.text[:200])
                except httpx.HTTPError as e:
                    log.warning("gateway_spans_failed", error=str(e))
                self.num_dropped += len(spans)

    async def stop(self) -> None:
        """Send what is queued, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task  # a post in flight finishes (cancelling it cuts the request)
        await self.flush()
        await self._client.aclose()
