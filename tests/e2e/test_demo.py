"""`sightline demo` (what `make demo` runs) serves spans from its simulated app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from _dashboard import login
from _helpers import free_port
from sightline.cli import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_KEY


def test_demo_serves_its_traffic(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env["SIGHTLINE_INGEST_WORKERS"] = "0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sightline",
            "demo",
            "--port",
            str(port),
            "--otlp-grpc-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--rate",
            "10",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        headers = {"authorization": f"Bearer {DEMO_KEY}"}
        deadline = time.monotonic() + 60
        kinds: set[str] = set()
        while (
            time.monotonic() < deadline and not {"llm", "retrieval", "chain", "guardrail"} <= kinds
        ):
            time.sleep(1)
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/spans",
                    headers=headers,
                    params={"limit": 1000},
                    timeout=5,
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                kinds = {s["kind"] for s in r.json()["data"]}
        assert {"llm", "retrieval", "chain", "guardrail"} <= kinds
        llm = [s for s in r.json()["data"] if s["kind"] == "llm" and s["status"] != "error"]
        assert llm and all(s["ttft_ms"] and s["cost_usd"] for s in llm)
        # The root span ends last, so it is exported after its children: wait for it.
        url = f"http://127.0.0.1:{port}/api/v1/traces/{llm[0]['trace_id']}"
        roots: list[str] = []
        while time.monotonic() < deadline + 30 and roots != ["rag-request"]:
            roots = [s["name"] for s in httpx.get(url, headers=headers).json()["spans"]]
            time.sleep(0.5)
        assert roots == ["rag-request"]
        # the printed dashboard login works and shows the demo's traces
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as web:
            login(web, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD)
            page = web.get("/traces")
            assert page.status_code == 200 and "rag-request" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert b"API key: " + DEMO_KEY.encode() in err
    assert f"email: {DEMO_ADMIN_EMAIL}    password: {DEMO_ADMIN_PASSWORD}".encode() in err
