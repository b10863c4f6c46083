"""Test helpers: a real `sightline serve` process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa

from sightline.errors import StoreError
from sightline.store import DuckDBStore

ROOT = Path(__file__).resolve().parent.parent

API_KEY = "sl_test_key_0123456789abcdef"
PROJECT = "test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_answer(s: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body of an HTTP/1.1 answer on a raw socket, and whether the server then
    closed the connection (within 5 s)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        assert got, f"closed without an answer: {data!r}"
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        got = s.recv(65536)
        assert got, "closed in the middle of the answer"
        body += got
    s.settimeout(5)
    try:
        closed = s.recv(1) == b""
    except ConnectionResetError:  # closed with bytes of the request left unread
        closed = True
    except TimeoutError:
        closed = False
    return status, headers, body[:n], closed


@dataclass
class Server:
    """A real `sightline serve` process."""

    data_dir: Path
    port: int
    grpc_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    ready_timeout_s: float = 60.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = API_KEY, **kw: object) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
        env.update(
            {
                "SIGHTLINE_INIT_PROJECT": PROJECT,
                "SIGHTLINE_INIT_API_KEY": API_KEY,
                "SIGHTLINE_INGEST_WORKERS": "0",
                "SIGHTLINE_LOG_LEVEL": "info",
                # Evaluation loads its models and takes CPU; tests of evaluation turn it on.
                "SIGHTLINE_EVAL_ENABLED": "false",
            }
        )
        env.update(self.env)
        args = list(self.args)
        if os.environ.get("SIGHTLINE_TEST_STORE") == "clickhouse" and "--store" not in args:
            # the same suite on the ClickHouse store (make test-clickhouse)
            args += ["--store", f"chdb://{self.data_dir / 'ch'}"]
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sightline",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--otlp-grpc-port",
                    str(self.grpc_port),
                    *args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_server(tmp_path: Path, **kw: object) -> Server:
    return Server(data_dir=tmp_path / "data", port=free_port(), **kw).start()  # type: ignore[arg-type]


class GatedStore(DuckDBStore):
    """A real DuckDB store whose commits wait for a gate, to hold the writer mid-transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    def insert_batches(self, batches: Sequence[pa.Table]) -> int:
        self.entered.set()
        self.gate.wait(10)
        if self.fail:
            raise StoreError("disk full")
        return super().insert_batches(batches)

    def check_writable(self) -> None:
        if self.fail:
            raise StoreError("disk full")
        super().check_writable()
