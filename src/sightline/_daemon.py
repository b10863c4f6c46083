"""DaemonTask: the one base class of background work that runs in the app's lifespan."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

import structlog

__all__ = ["DaemonTask"]

log = structlog.get_logger("sightline.daemon")


def _is_store_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is DuckDB's memory-limit error (by name: this module imports no store)."""
    cls = type(e)
    return cls.__name__ == "OutOfMemoryException" and cls.__module__.lstrip("_") == "duckdb"


class DaemonTask:
    """Calls :meth:`run_once` every ``interval_s`` seconds on its own thread until stopped.

    A failing run is logged and the loop goes on: a background task must never take the server
    down, nor stop because of one bad tick. Subclasses implement :meth:`run_once` and may
    override :meth:`on_stop`. Usable as a context manager (``with task: ...``).
    """

    name = "daemon"

    def __init__(self, *, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.gate: Callable[[], bool] | None = None
        """Asked before each run: False skips it (a leader's loops, past its lease)."""

    def run_once(self) -> None:
        """One unit of work; called every ``interval_s``."""
        raise NotImplementedError

    def on_stop(self) -> None:
        """Release resources after the loop has ended."""

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def start(self) -> None:
        """Start the loop thread (once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"sightline-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to end, wait for the current run, then call :meth:`on_stop`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.on_stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.gate is not None and not self.gate():
                self._stop.wait(max(self.interval_s, 0.2))
                continue
            try:
                self.run_once()
            except Exception as e:  # a daemon loop logs and goes on (STYLE 22)
                if _is_store_out_of_memory(e):
                    # transient (a checkpoint took what the limit left): the next tick retries
                    log.warning(
                        "daemon_store_out_of_memory",
                        daemon=self.name,
                        error=str(e).split("\n")[0],
                    )
                else:
                    log.exception("daemon_run_failed", daemon=self.name)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> DaemonTask:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> DaemonTask:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)
