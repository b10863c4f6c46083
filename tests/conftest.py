from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _helpers import Server, free_port, start_server

if TYPE_CHECKING:
    from sightline.testing import ClickHouseHTTP

# Nothing may fetch model weights or data at run time: any attempt through the Hugging Face hub
# fails instead of downloading.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clickhouse-http",
        action="store_true",
        help="run the store suite's ClickHouse tests over HTTP, on sightline.testing."
        "ClickHouseHTTP (the real engine, chdb, behind a ClickHouse HTTP front) instead of chdb "
        "in-process",
    )
    parser.addoption(
        "--clickhouse-tz",
        default=None,
        help="the time zone of the --clickhouse-http server (a real server often runs in local "
        "time), e.g. America/New_York",
    )


@pytest.fixture(scope="session")
def clickhouse_http(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ClickHouseHTTP]:
    """One ClickHouse HTTP endpoint (its own process) for the session (per xdist worker)."""
    from sightline.testing import ClickHouseHTTP

    tmp = tmp_path_factory.mktemp("clickhouse-http")
    tz = request.config.getoption("--clickhouse-tz")
    with ClickHouseHTTP(tmp / "data", log_path=tmp / "harness.log", timezone=tz) as ch:
        yield ch


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's SIGHTLINE_*/OTEL_* settings."""
    for k in list(os.environ):
        if k.startswith(("SIGHTLINE_", "OTEL_")):
            monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a test module (tests use distinct trace ids)."""
    srv = start_server(tmp_path_factory.mktemp("srv"), grpc_port=free_port())
    yield srv
    srv.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount small tmpfs file systems (``tmpfs("6m")``) to fill a disk for real; root only.

    Skips when the test is not root or cannot mount; grow one with
    ``mount -o remount,size=... PATH``. Unmounted at the end of the test.
    """
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root and mount(8) for a small tmpfs")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir()
        r = subprocess.run(  # noqa: S603 - fixed argv
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)  # noqa: S603, S607
