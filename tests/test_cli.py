from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from _helpers import Server, free_port
from sightline.cli import main


def test_projects_create_prints_a_working_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["projects", "create", "shop", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("sl_") and len(key) > 40
    srv = Server(data_dir=data, port=free_port()).start()
    try:
        r = httpx.get(f"{srv.url}/api/v1/spans", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200
    finally:
        srv.stop()


def test_projects_create_twice_is_a_clear_error(tmp_path: Path) -> None:
    args = ["projects", "create", "shop", "--data-dir", str(tmp_path)]
    assert CliRunner().invoke(main, args).exit_code == 0
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert "Traceback" not in result.output


def test_invalid_project_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["projects", "create", "Bad Name!", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "invalid project name" in result.output


def test_serve_rejects_bad_settings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sightline",
            "serve",
            "--port",
            "99999",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "port" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_rejects_bad_price_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("models: nope")
    proc = subprocess.run(
        [sys.executable, "-m", "sightline", "--prices-file", str(f), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "invalid price file" in proc.stderr and "Traceback" not in proc.stderr


def test_import_sightline_stays_light() -> None:
    """Applications import the SDK; it must not drag in the server's dependencies."""
    code = (
        "import sys, sightline; bad = [m for m in ('fastapi', 'duckdb', 'numpy', 'pyarrow',"
        " 'uvicorn', 'starlette') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
