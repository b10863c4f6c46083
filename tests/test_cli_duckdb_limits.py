"""`sightline compact` and `sightline migrate` open DuckDB with serve's memory limit and threads.

Each command prints the settings its DuckDB connection runs with, read back from the
connection (``current_setting``); the expected text is what DuckDB reports for the same
settings on a connection of its own.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from sightline.cli import main
from sightline.store._duckdb import DuckDBStore


def _reported(limit: str, threads: int) -> str:
    con = duckdb.connect(config={"memory_limit": limit, "threads": threads})
    try:
        got, th = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchall()[0]
    finally:
        con.close()
    return f"DuckDB memory_limit {got}, threads {th}"


def _store(data: Path) -> Path:
    st = DuckDBStore(data / "sightline.duckdb")
    st.migrate()
    st.close()
    return data / "sightline.duckdb"


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--duckdb-memory-limit", "lots"], None, "is not a size"),
        (["--duckdb-memory-limit", "1MB"], None, "below the 64MiB"),
        (["--duckdb-threads", "0"], None, "duckdb_threads"),
        ([], {"SIGHTLINE_DUCKDB_MEMORY_LIMIT": "200%"}, "a share of RAM must be in"),
    ],
)
def test_compact_refuses_a_bad_setting(
    tmp_path: Path, flags: list[str], env: dict[str, str] | None, message: str
) -> None:
    db = _store(tmp_path)
    before = db.read_bytes()
    result = _run("compact", "--data-dir", str(tmp_path), *flags, env=env)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert db.read_bytes() == before


def test_compact_runs_with_the_memory_limit_and_threads_given(tmp_path: Path) -> None:
    _store(tmp_path)
    result = _run(
        "compact", "--data-dir", str(tmp_path), "--duckdb-memory-limit", "256MB",
        "--duckdb-threads", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _reported("256MB", 1) in result.output
    assert "compacted" in result.output


def test_compact_reads_the_limit_from_the_environment_and_defaults_as_serve(
    tmp_path: Path,
) -> None:
    _store(tmp_path)
    env = {"SIGHTLINE_DUCKDB_MEMORY_LIMIT": "300MB", "SIGHTLINE_DUCKDB_THREADS": "2"}
    result = _run("compact", "--data-dir", str(tmp_path), env=env)
    assert result.exit_code == 0, result.output
    assert _reported("300MB", 2) in result.output
    result = _run("compact", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"DuckDB memory_limit {_reported('256MB', 1).split()[2]}" in result.output  # serve's


def test_migrate_refuses_a_bad_setting(tmp_path: Path) -> None:
    src = _store(tmp_path)
    result = _run(
        "migrate", "--from", str(src), "--to", f"chdb://{tmp_path / 'ch'}",
        "--duckdb-memory-limit", "12 apples",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "is not a size" in result.output
    assert not (tmp_path / "ch").exists()


def test_migrate_opens_the_source_with_the_memory_limit_and_threads_given(
    tmp_path: Path,
) -> None:
    src = _store(tmp_path)
    result = _run(
        "migrate", "--from", str(src), "--to", f"chdb://{tmp_path / 'ch'}",
        "--duckdb-memory-limit", "256MB", "--duckdb-threads", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"source {src}: {_reported('256MB', 1)}" in result.output
