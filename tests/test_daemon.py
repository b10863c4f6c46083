"""DaemonTask: start/stop/async with, and a failing daemon that does not take the loop down."""

from __future__ import annotations

import asyncio

from sightline._daemon import DaemonTask


class Counter(DaemonTask):
    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0
        self.cleaned = False

    async def _run(self) -> None:
        try:
            while True:
                self.ticks += 1
                await asyncio.sleep(0.01)
        finally:
            self.cleaned = True


class Broken(DaemonTask):
    async def _run(self) -> None:
        raise RuntimeError("boom")


class TestDaemonTask:
    def test_start_stop_and_async_with(self) -> None:
        async def main() -> Counter:
            d = Counter()
            async with d:
                assert d.running
                await d.start()  # idempotent
                await asyncio.sleep(0.1)
            assert not d.running and d.cleaned
            await d.stop()  # stopping twice is fine
            return d

        d = asyncio.run(main())
        assert d.ticks > 1 and d.failed is None

    def test_a_failing_daemon_is_recorded_not_raised(self) -> None:
        async def main() -> Broken:
            d = Broken()
            await d.start()
            await asyncio.sleep(0.05)
            assert not d.running
            await d.stop()
            return d

        d = asyncio.run(main())
        assert isinstance(d.failed, RuntimeError)
