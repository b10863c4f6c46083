"""DaemonTask: the one base of background work that runs in the server's lifespan.

A daemon runs ``_run`` as an asyncio task started by :meth:`DaemonTask.start` and cancelled by
:meth:`DaemonTask.stop` (or ``async with``). Blocking work inside ``_run`` goes to a thread
(``asyncio.to_thread``) so the event loop, which also serves ingest, never waits on it. Any
stage (evaluation, monitoring, budgets) subclasses it; it depends on nothing but asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import structlog

__all__ = ["DaemonTask"]

log = structlog.get_logger("sightline.daemon")


class DaemonTask:
    """Background work with a start/stop lifecycle; subclasses implement :meth:`_run`.

    ``_run`` should loop until cancelled; if it raises, the error is logged and the daemon is
    marked stopped (``failed`` holds the error) rather than killing the server.

    Example:
        >>> class Ticker(DaemonTask):
        ...     async def _run(self) -> None:
        ...         while True:
        ...             await asyncio.sleep(1)
    """

    name: str = "daemon"
    """Used in logs and as the asyncio task name."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None
        """The error that ended ``_run``, if it ended by raising."""

    @property
    def running(self) -> bool:
        """Whether the task is started and has not finished."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start ``_run`` on the running event loop (a no-op if already running)."""
        if self.running:
            return
        self.failed = None
        self._task = asyncio.create_task(self._guarded(), name=f"sightline-{self.name}")

    async def stop(self) -> None:
        """Cancel ``_run`` and wait until it has finished."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _guarded(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a daemon must not take the server down; logged (STYLE 22)
            self.failed = e
            log.exception("daemon_failed", daemon=self.name)

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> DaemonTask:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
