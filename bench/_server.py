"""Run a real `sightline serve` for a benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KEY = "sl_bench_key_0123456789abcdef"
PROJECT = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    data_dir: Path,
    *,
    workers: int | None = None,
    env: dict[str, str] | None = None,
    named_threads: bool = False,
    grpc_port: int = 0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``sightline serve``; ``named_threads``: through ``_threadnames.py`` (see there).

    ``grpc_port``: the OTLP/gRPC receiver's port (0: off).
    """
    port = free_port()
    extra_env = env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env.update(
        {
            "SIGHTLINE_INIT_PROJECT": PROJECT,
            "SIGHTLINE_INIT_API_KEY": KEY,
            "SIGHTLINE_LOG_LEVEL": "warning",
        }
    )
    if workers is not None:
        env["SIGHTLINE_INGEST_WORKERS"] = str(workers)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [
            sys.executable,
            *(
                [str(Path(__file__).with_name("_threadnames.py"))]
                if named_threads
                else ["-m", "sightline"]
            ),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--otlp-grpc-port",
            str(grpc_port),
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def metrics(url: str) -> dict[str, float]:
    """The server's unlabelled /metrics samples by name (``sightline_store_commits_total``...)."""
    r = httpx.get(f"{url}/metrics", headers={"x-api-key": KEY}, timeout=60)
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        name, _, value = line.partition(" ")
        if name and not name.startswith("#") and "{" not in name:
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants still alive."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def wait_idle(pid: int, *, max_cores: float = 0.1, timeout_s: float = 120.0) -> float:
    """Wait until the server's process tree uses under ``max_cores`` over one second.

    At start the server's niced evaluator process loads its models (seconds of CPU on both
    cores); a throughput run that starts meanwhile measures that load, not the steady state.
    Returns the seconds waited.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        c0 = tree_cpu_s(pid)
        time.sleep(1.0)
        if tree_cpu_s(pid) - c0 < max_cores:
            break
    return time.monotonic() - t0
