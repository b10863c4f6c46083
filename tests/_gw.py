"""A real `sightline gateway` process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _helpers import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
"""The machine's Redis, database 0; each test keeps its keys under a prefix of its own."""


@dataclass
class Gateway:
    upstream: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """Environment of the process besides the test's own (whose SIGHTLINE_* are dropped)."""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> Gateway:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
        env["HF_HUB_OFFLINE"] = "1"
        env.update(self.env)
        self.log_path = log_dir / f"gateway-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sightline", "gateway", "--port", str(self.port),
                 "--upstream", self.upstream, *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stats(self) -> dict[str, object]:
        data: dict[str, object] = httpx.get(self.url + "/gateway/stats", timeout=10).json()
        return data
