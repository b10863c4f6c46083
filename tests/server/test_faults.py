"""Faults against a real `sightline serve`: SIGKILL mid-stream, and a store that cannot write.

Every test drives a real server process over loopback with several concurrent OTLP/HTTP clients,
remembers which batches were acknowledged (2xx), and checks through the REST API that each
acknowledged span is stored exactly once and that no unacknowledged batch is half-written.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from _helpers import API_KEY, Server, free_port
from _load import Senders, assert_exactly_once, make_batches, stored_keys
from _payload import llm_request


def _wait_for(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _readyz(srv: Server) -> httpx.Response:
    return httpx.get(f"{srv.url}/readyz", timeout=10)


def _restart(srv: Server) -> Server:
    return Server(data_dir=srv.data_dir, port=free_port(), env=srv.env).start()


class TestCrash:
    def test_sigkill_mid_stream_keeps_every_acknowledged_span_exactly_once(
        self, tmp_path: Path
    ) -> None:
        """Two SIGKILLs while 4 clients stream; after each restart the acknowledged spans are
        all there once, in-flight batches are all-or-nothing, and re-sending them is a no-op."""
        rng = random.Random(7)
        batches = make_batches(240, 100, seed=1)
        data_dir = tmp_path / "data"
        srv = Server(data_dir=data_dir, port=free_port()).start()
        acked, unacked = [], []
        todo = batches
        try:
            for _round in range(2):
                senders = Senders(srv.url, todo, num_threads=4).start()
                # Let a few commits through, then kill at a random moment of the stream.
                target = rng.randint(2_000, 6_000)
                _wait_for(
                    lambda s=senders, t=target: s.num_acked_spans >= t,
                    60,
                    "acknowledgements",
                )
                time.sleep(rng.uniform(0, 0.2))
                srv.kill()
                senders.join()
                assert senders.unacked, "the kill landed after the stream ended"
                assert set(senders.statuses) == {200}, senders.statuses
                acked += senders.acked
                srv = _restart(srv)
                assert_exactly_once(stored_keys(srv), acked, senders.unacked)
                unacked = senders.unacked
                todo = unacked
            # A client re-sends what was never acknowledged: still exactly once.
            again = Senders(srv.url, unacked, num_threads=4).start()
            again.join()
            assert not again.unacked and set(again.statuses) == {200}
            seen = stored_keys(srv)
            assert_exactly_once(seen, acked + again.acked, [])
            assert sum(seen.values()) == sum(len(b.keys) for b in acked + again.acked)
        finally:
            srv.stop()


def _outage_checks(srv: Server, senders: Senders) -> None:
    """While the store fails: 503 + Retry-After + JSON error, and /readyz says unavailable."""
    _wait_for(lambda: senders.statuses[503] >= 5, 60, "503 answers")
    r = _readyz(srv)
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "unavailable"
    bad = [r for r in senders.refusals if r.status_code != 503]
    assert not bad, [(r.status_code, r.text) for r in bad]
    for r in senders.refusals:
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"].startswith("application/json")
        err = r.json()["error"]
        assert err["code"] == "store_unavailable"
        assert "retry" in err["message"]
        assert str(srv.data_dir) not in r.text  # details stay in the server log


class TestStoreOutage:
    def test_injected_store_failure_is_503_then_ingest_resumes_without_restart(
        self, tmp_path: Path
    ) -> None:
        fault = tmp_path / "store-fault"
        srv = Server(
            data_dir=tmp_path / "data",
            port=free_port(),
            env={"SIGHTLINE_TEST_STORE_FAULT_FILE": str(fault)},
        ).start()
        try:
            pid = srv.proc.pid  # type: ignore[union-attr]
            senders = Senders(srv.url, make_batches(200, 100, seed=2), num_threads=4)
            senders.start()
            _wait_for(lambda: senders.num_acked_spans >= 3_000, 60, "acknowledgements")
            fault.touch()
            _outage_checks(srv, senders)
            acked_during = senders.num_acked_spans
            time.sleep(1.0)
            # At most the commits already under way when the fault began went through.
            assert senders.num_acked_spans - acked_during <= 1_000
            fault.unlink()
            # The same process (no restart) takes the retried batches again.
            senders.join()
            assert srv.proc.pid == pid and srv.proc.poll() is None  # type: ignore[union-attr]
            assert not senders.unacked
            assert senders.statuses[503] >= 5
            # /readyz turns once no write has failed for 2 s (docs/reliability.md).
            _wait_for(lambda: _readyz(srv).status_code == 200, 10, "/readyz after recovery")
            assert_exactly_once(stored_keys(srv), senders.acked, [])
            assert len(senders.acked) == 200

            # Idle recovery: nothing is sent while the store comes back, yet /readyz turns.
            fault.touch()
            one = Senders(srv.url, make_batches(1, 10, seed=3), num_threads=1, retry=False)
            one.start().join()
            assert one.statuses == {503: 1}
            assert _readyz(srv).status_code == 503
            fault.unlink()
            _wait_for(lambda: _readyz(srv).status_code == 200, 10, "/readyz after recovery")
            one = Senders(srv.url, one.unacked, num_threads=1, retry=False)
            one.start().join()
            assert one.statuses == {200: 1}
        finally:
            srv.stop()
        assert "store_recovered" in srv.log()

    def test_full_disk_is_503_then_ingest_resumes_when_space_returns(
        self, tmpfs: Callable[[str], Path]
    ) -> None:
        """A real fault: the data directory is a tmpfs that fills up, then is grown again."""
        small_tmpfs = tmpfs("6m")
        srv = Server(data_dir=small_tmpfs, port=free_port()).start()
        try:
            senders = Senders(srv.url, make_batches(400, 100, seed=4), num_threads=4)
            senders.start()
            _outage_checks(srv, senders)
            assert senders.acked, "nothing was acknowledged before the disk filled"
            time.sleep(1.0)
            subprocess.run(["mount", "-o", "remount,size=256m", str(small_tmpfs)], check=True)
            senders.join()
            assert not senders.unacked
            assert srv.proc.poll() is None  # type: ignore[union-attr]
            _wait_for(lambda: _readyz(srv).status_code == 200, 10, "/readyz after recovery")
            assert_exactly_once(stored_keys(srv), senders.acked, [])
            assert len(senders.acked) == 400
        finally:
            srv.stop()
        log = srv.log()
        assert "No space left on device" in log
        assert "store_recovered" in log
        # And it all survives a restart (the write-ahead log was not left corrupt).
        srv = _restart(srv)
        try:
            assert_exactly_once(stored_keys(srv), senders.acked, [])
        finally:
            srv.stop()


def test_documented_client_rides_out_an_outage(tmp_path: Path) -> None:
    """The client of docs/reliability.md keeps its batch through a store outage."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict[str, object] = {}
    exec(compile(code, "docs/reliability.md", "exec"), ns)  # noqa: S102 - our own docs
    send = ns["send"]
    fault = tmp_path / "store-fault"
    fault.touch()
    srv = Server(
        data_dir=tmp_path / "data",
        port=free_port(),
        env={"SIGHTLINE_TEST_STORE_FAULT_FILE": str(fault)},
    ).start()
    try:
        batch = make_batches(1, 20, seed=6)[0]
        done = threading.Event()

        def run() -> None:
            with srv.client() as c:
                send(c, batch.body)  # type: ignore[operator]
            done.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert not done.wait(3)  # refused with 503 and retried while the store fails
        fault.unlink()
        t.join(30)
        assert done.is_set()
        assert_exactly_once(stored_keys(srv), [batch], [])
    finally:
        srv.stop()


def test_grpc_export_is_unavailable_during_an_outage_then_ok(tmp_path: Path) -> None:
    """OTLP/gRPC exporters retry UNAVAILABLE: that is what a failing store answers there."""
    fault = tmp_path / "store-fault"
    srv = Server(
        data_dir=tmp_path / "data",
        port=free_port(),
        grpc_port=free_port(),
        env={"SIGHTLINE_TEST_STORE_FAULT_FILE": str(fault)},
    ).start()
    try:
        req, _ids = llm_request(5)
        with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as ch:
            stub = trace_service_pb2_grpc.TraceServiceStub(ch)  # type: ignore[no-untyped-call]

            def export() -> grpc.StatusCode:
                try:
                    stub.Export(req, metadata=[("authorization", f"Bearer {API_KEY}")], timeout=30)
                except grpc.RpcError as e:
                    return e.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

            fault.touch()
            assert export() == grpc.StatusCode.UNAVAILABLE
            fault.unlink()
            assert export() == grpc.StatusCode.OK
        assert len(stored_keys(srv)) == 5
    finally:
        srv.stop()
