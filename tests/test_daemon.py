"""DaemonTask: a failing tick is logged and the loop goes on; DuckDB's memory-limit error (a
real one) is a warning without a traceback, and the next tick retries."""

from __future__ import annotations

import threading

import duckdb
from structlog.testing import capture_logs

from sightline._daemon import DaemonTask


class _Reader(DaemonTask):
    name = "reader"

    def __init__(self) -> None:
        super().__init__(interval_s=0.01)
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET memory_limit = '1MB'")
        self.con.execute("SET threads = 1")
        self.ok = threading.Event()
        self.ticks = 0

    def run_once(self) -> None:
        self.ticks += 1
        if self.ticks == 3:
            self.con.execute("SET memory_limit = '256MB'")
        # sorting a million rows needs far more than 1MB
        self.con.execute("SELECT i FROM range(1000000) t(i) ORDER BY i DESC LIMIT 1").fetchall()
        self.ok.set()


class _Broken(DaemonTask):
    name = "broken"

    def __init__(self) -> None:
        super().__init__(interval_s=0.01)
        self.calls = 0
        self.done = threading.Event()

    def run_once(self) -> None:
        self.calls += 1
        if self.calls >= 2:
            self.done.set()
        raise RuntimeError("boom")


def test_a_store_out_of_memory_is_a_warning_and_the_next_tick_retries() -> None:
    task = _Reader()
    with capture_logs() as logs, task:
        assert task.ok.wait(30)
    task.con.close()
    oom = [e for e in logs if e["event"] == "daemon_store_out_of_memory"]
    assert len(oom) == 2, logs
    assert oom[0]["daemon"] == "reader" and oom[0]["log_level"] == "warning"
    assert "memory" in oom[0]["error"].lower() and "\n" not in oom[0]["error"]
    assert "exc_info" not in oom[0]
    assert not [e for e in logs if e["event"] == "daemon_run_failed"]


def test_any_other_error_is_logged_with_its_traceback_and_the_loop_goes_on() -> None:
    task = _Broken()
    with capture_logs() as logs, task:
        assert task.done.wait(30)
    failed = [e for e in logs if e["event"] == "daemon_run_failed"]
    assert len(failed) >= 2 and failed[0]["daemon"] == "broken"
    assert failed[0]["exc_info"] is True and failed[0]["log_level"] == "error"
