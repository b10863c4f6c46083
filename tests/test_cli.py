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


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "sightline", "serve", "--port", str(free_port()),
         "--ingest-workers", "0", "--log-format", "console", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SIGHTLINE_EVAL_ENABLED": "false", **(env or {})},
    )  # fmt: skip


def test_serve_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    """The lifespan fails on it: the command used to print a traceback and exit 3."""
    f = tmp_path / "afile"
    f.write_text("x")
    proc = _serve(tmp_path, "--otlp-grpc-port", "0", env={"SIGHTLINE_DATA_DIR": str(f)})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error: cannot start:" in proc.stderr and str(f) in proc.stderr


def test_serve_on_a_store_another_process_holds_is_a_clear_error(tmp_path: Path) -> None:
    import duckdb

    tmp_path.joinpath("data").mkdir()
    held = duckdb.connect(str(tmp_path / "data" / "sightline.duckdb"))  # holds the file's lock
    try:
        proc = _serve(tmp_path, "--otlp-grpc-port", "0", "--data-dir", str(tmp_path / "data"))
    finally:
        held.close()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error: cannot start: cannot open DuckDB store" in proc.stderr


def test_serve_on_a_taken_grpc_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _serve(tmp_path, "--otlp-grpc-port", str(port), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (
        f"Error: cannot start: cannot bind OTLP/gRPC to 127.0.0.1:{port}: address already in use"
        in proc.stderr
    )


def test_second_server_on_the_same_grpc_port_is_a_clear_error(tmp_path: Path) -> None:
    """gRPC sets SO_REUSEPORT by default: a second server used to bind the same port, log
    otlp_grpc_listening and have the kernel split the exporters' spans between two stores."""
    grpc_port = free_port()
    first = Server(data_dir=tmp_path / "first", port=free_port(), grpc_port=grpc_port).start()
    try:
        proc = _serve(
            tmp_path, "--otlp-grpc-port", str(grpc_port), "--data-dir", str(tmp_path / "second"),
            timeout=60,  # before the fix it served on, and this timed out
        )  # fmt: skip
        assert first.proc is not None and first.proc.poll() is None
    finally:
        first.stop()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "otlp_grpc_listening" not in proc.stderr
    assert (
        f"Error: cannot start: cannot bind OTLP/gRPC to 127.0.0.1:{grpc_port}: "
        "address already in use" in proc.stderr
    )


def test_serve_short_init_admin_password_is_a_clear_error(tmp_path: Path) -> None:
    proc = _serve(
        tmp_path,
        "--otlp-grpc-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        env={"SIGHTLINE_INIT_ADMIN_EMAIL": "a@b.example", "SIGHTLINE_INIT_ADMIN_PASSWORD": "short"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "at least 12 characters" in proc.stderr


def test_env_setting_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    """pydantic-settings raises SettingsError (not a ValidationError) on a bad JSON value."""
    result = CliRunner().invoke(
        main,
        ["projects", "create", "shop", "--data-dir", str(tmp_path)],
        env={"SIGHTLINE_EVAL_OPTIONS": "{not json"},
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not a SettingsError escaping
    assert "eval_options" in result.output and "invalid settings" in result.output


def test_unknown_log_level_and_format_are_refused(tmp_path: Path) -> None:
    """They used to fall back to info / console logs without a word."""
    for name, value in (("SIGHTLINE_LOG_LEVEL", "verbose"), ("SIGHTLINE_LOG_FORMAT", "xml")):
        result = CliRunner().invoke(
            main, ["projects", "create", "shop", "--data-dir", str(tmp_path)], env={name: value}
        )
        assert result.exit_code == 1, (name, result.output)
        assert "invalid settings" in result.output and repr(value) in result.output
    from sightline.config import Settings

    assert Settings(log_level="WARNING").log_level == "warning"


def test_demo_rate_must_be_a_positive_bounded_number(tmp_path: Path) -> None:
    """--rate 0 or below killed the traffic thread with a traceback (the server ran on, empty);
    an unbounded rate spawned a thread per simulated request without limit."""
    for rate in ("0", "-1", "nan", "inf", "1e9"):
        # --port 99999: the old code, accepting the rate, fails on the port (exit 1) instead
        # of starting a demo
        result = CliRunner().invoke(
            main, ["demo", "--rate", rate, "--data-dir", str(tmp_path), "--port", "99999"]
        )
        assert result.exit_code == 2, (rate, result.output)
        assert "--rate" in result.output and "Traceback" not in result.output


def test_conflicting_settings_are_refused_before_starting(tmp_path: Path) -> None:
    """Each used to be accepted: the first failed only after startup (the HTTP bind), the others
    did nothing (no key registered, no admin created) and left the user guessing."""
    cases = [
        (["--port", "17999", "--otlp-grpc-port", "17999"], {}, "port and otlp_grpc_port"),
        ([], {"SIGHTLINE_INIT_API_KEY": "sl_k_0123456789abcdef"}, "without init_project"),
        ([], {"SIGHTLINE_INIT_ADMIN_PASSWORD": "a-long-password"}, "without init_admin_email"),
    ]
    # a data dir that is a file: the old code, accepting the settings, fails fast at startup
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for args, env, message in cases:
        result = CliRunner().invoke(
            main, ["serve", *args], env={"SIGHTLINE_DATA_DIR": str(not_a_dir), **env}
        )
        assert result.exit_code == 1, (args, env, result.output)
        assert "invalid settings" in result.output and message in result.output
    from sightline.config import Settings

    # the demo's settings, and a project with its key, stay valid
    Settings(init_project="p", init_api_key="sl_k_0123456789abcdef", port=0, otlp_grpc_port=0)


class TestHttpBindFailure:
    """A port or host uvicorn cannot listen on used to end in uvicorn's log line and exit 3,
    after the store, decode workers and evaluators had started."""

    @staticmethod
    def _run(*args: str, eval_enabled: bool = False) -> subprocess.CompletedProcess[str]:
        import os
        import signal
        import time

        with subprocess.Popen(
            [sys.executable, "-m", "sightline", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: what it leaves behind is findable
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")},
                "SIGHTLINE_EVAL_ENABLED": str(eval_enabled).lower(),
            },
        ) as popen:
            out, err = popen.communicate(timeout=120)
        proc = subprocess.CompletedProcess(popen.args, popen.returncode, out, err)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(popen.pid, 0)
            except ProcessLookupError:
                break  # the group is empty: no worker or evaluator process outlived it
            if time.monotonic() > deadline:
                os.killpg(popen.pid, signal.SIGKILL)
                raise AssertionError(f"processes left behind:\n{proc.stderr}")
            time.sleep(0.1)
        return proc

    def test_serve_on_a_taken_port_exits_1_and_the_data_dir_serves_right_after(
        self, tmp_path: Path
    ) -> None:
        import socket

        data = tmp_path / "data"
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = self._run(
                "serve", "--port", str(port), "--data-dir", str(data), "--otlp-grpc-port", "0",
                "--ingest-workers", "2", "--log-format", "console", eval_enabled=True,
            )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert (
            f"Error: cannot start: cannot bind HTTP to 127.0.0.1:{port}: address already in use"
            in proc.stderr
        )
        srv = Server(data_dir=data, port=free_port()).start()  # no DuckDB lock left
        try:
            with srv.client() as c:
                assert c.get("/api/v1/spans").status_code == 200
        finally:
            srv.stop()

    def test_serve_on_a_host_that_does_not_resolve(self, tmp_path: Path) -> None:
        proc = self._run(
            "serve", "--host", "999.1.1.1", "--port", str(free_port()), "--data-dir",
            str(tmp_path / "data"), "--otlp-grpc-port", "0", "--log-format", "console",
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "Error: cannot start: cannot bind HTTP to 999.1.1.1:" in proc.stderr
        assert "cannot resolve host '999.1.1.1'" in proc.stderr

    def test_serve_on_an_address_not_of_this_machine(self, tmp_path: Path) -> None:
        proc = self._run(
            "serve", "--host", "192.0.2.1", "--port", str(free_port()), "--data-dir",
            str(tmp_path / "data"), "--otlp-grpc-port", "0", "--log-format", "console",
        )  # fmt: skip  # 192.0.2.0/24 is TEST-NET-1, never assigned
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "Error: cannot start: cannot bind HTTP to 192.0.2.1:" in proc.stderr
        assert "not an address of this machine" in proc.stderr

    def test_gateway_on_a_taken_port(self) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = self._run("gateway", "--port", str(port), "--upstream", "http://127.0.0.1:9/v1")
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert (
            f"Error: cannot start: cannot bind HTTP to 127.0.0.1:{port}: address already in use"
            in proc.stderr
        )

    def test_gateway_on_a_host_that_does_not_resolve(self) -> None:
        proc = self._run(
            "gateway", "--host", "999.1.1.1", "--port", str(free_port()),
            "--upstream", "http://127.0.0.1:9/v1",
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "Error: cannot start: cannot bind HTTP to 999.1.1.1:" in proc.stderr

    def test_demo_on_a_taken_port_sends_no_traffic_to_its_holder(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            taken.setblocking(False)
            port = taken.getsockname()[1]
            proc = self._run(
                "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                "--otlp-grpc-port", "0", "--ingest-workers", "0", "--log-format", "console",
            )  # fmt: skip
            try:
                conn, _ = taken.accept()
            except BlockingIOError:
                conn = None
            if conn is not None:
                conn.close()
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert (
            f"Error: cannot start: cannot bind HTTP to 127.0.0.1:{port}: address already in use"
            in proc.stderr
        )
        assert conn is None, "the demo's traffic went to the process holding the port"
