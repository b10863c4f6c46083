"""Save a PNG of every dashboard page, with demo data: `make screenshots`.

Runs `sightline demo` (its simulated RAG app sends traffic) on a free port with a throwaway data
directory, waits for traces, logs in with the demo admin in Debian's Chromium (Playwright) and
screenshots each page into the given directory (default docs/screenshots).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from sightline.cli import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_KEY

PAGES = {
    "overview": "/",
    "traces": "/traces",
    "quality": "/quality",
    "alerts": "/alerts",
    "drift": "/drift",
    "cost": "/cost",
    "prompts": "/prompts",
    "settings": "/settings",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    warmup_s = float(os.environ.get("SCREENSHOTS_WARMUP_S", "45"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sightline", "demo", "--port", str(port), "--otlp-grpc-port",
             "0", "--data-dir", data, "--rate", "8", "--scenario", "latency-spike"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    r = httpx.get(f"{base}/api/v1/spans", params={"limit": 1}, timeout=2,
                                  headers={"authorization": f"Bearer {DEMO_KEY}"})  # fmt: skip
                    if r.status_code == 200 and r.json()["data"]:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            time.sleep(warmup_s)  # charts need a few minutes of points, the queue some scores
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                            args=["--no-sandbox"])  # fmt: skip
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{base}/login")
                page.fill("input[name=email]", DEMO_ADMIN_EMAIL)
                page.fill("input[name=password]", DEMO_ADMIN_PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                for name, path in PAGES.items():
                    page.goto(f"{base}{path}?range=1h")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(out / f"{name}.png")
                page.goto(f"{base}/traces?range=1h")
                html = page.content()
                tid = re.search(r'href="/traces/([0-9a-f]{32})', html)
                if tid:
                    page.goto(f"{base}/traces/{tid.group(1)}")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / "trace.png"), full_page=True)
                    print(out / "trace.png")
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
