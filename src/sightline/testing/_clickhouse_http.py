"""A ClickHouse HTTP endpoint for tests: the real ClickHouse engine (chdb) behind our HTTP front.

There is no ClickHouse server to run in CI, and chdb (the ClickHouse engine as a library) has
no server mode. :class:`ClickHouseHTTP` starts a separate process that speaks the part of
ClickHouse's HTTP interface that ``clickhouse-connect`` uses, and runs every query on ONE chdb
session in that process. What is real and what is ours:

- Real: SQL parsing, planning and execution, table engines (MergeTree, ReplacingMergeTree...),
  merges, types, formats (Native, Arrow, JSON, TabSeparated), server-side ``{name:Type}``
  parameters, settings and the error codes, all from the ClickHouse engine chdb embeds.
- Ours: the HTTP layer. Queries come from the ``query`` URL parameter and/or the POST body
  (multipart forms included), ``param_<name>`` are bound by the engine, every other
  non-transport parameter is applied as a setting for that query, ``database`` is the query's
  current database, insert data follows the ``INSERT ... FORMAT x`` statement (read from a
  temporary file with ``FROM INFILE``), bodies may be compressed (``Content-Encoding`` lz4,
  zstd, gzip, deflate) and responses are compressed when the client asks
  (``enable_http_compression=1``). Errors answer with ``X-ClickHouse-Exception-Code`` and the
  engine's ``Code: N. DB::Exception: ...`` text, as a server does.
- Not modelled: sessions (``session_id`` is accepted; every request shares the one chdb
  session, so a ``SET`` or temporary table is seen by all clients), users and grants (one
  optional password for every user), the native TCP protocol, clusters and replication, and
  concurrency: queries run one at a time under a lock (a server runs them in parallel). The
  ``client_protocol_version`` probe is not answered with block info, so clients fall back to
  protocol 0 (as behind a proxy that strips the parameter).

Example:
    ```python
    from sightline.store import open_store
    from sightline.testing import ClickHouseHTTP

    with ClickHouseHTTP(tmp_path / "ch") as ch:
        store = open_store(ch.store_url("sightline"))  # clickhouse://default:@127.0.0.1:PORT/...
        store.migrate()
    ```

Run one by hand with ``python -m sightline.testing._clickhouse_http --path DIR --port 8123``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ClickHouseHTTP"]

# Parameters the HTTP handler of a server consumes itself: never applied as query settings.
_TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "quota_key",
        "user",
        "password",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)
_INSERT_RE = re.compile(
    rb"\A\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*\Z", re.IGNORECASE)
_CODE_RE = re.compile(r"Code:\s*(\d+)")
_HTTP_STATUS = {
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    62: 400,  # SYNTAX_ERROR
    115: 400,  # UNKNOWN_SETTING
    516: 403,  # AUTHENTICATION_FAILED
}


class _CHError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def of(cls, code: int, name: str, text: str) -> _CHError:
        """An error of ours, worded as the engine words its own."""
        return cls(code, f"Code: {code}. DB::Exception: {text}. ({name})")


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":  # clickhouse-connect sends one lz4 frame per block
        import lz4.frame  # type: ignore[import-untyped]

        out = bytearray()
        while data:
            d = lz4.frame.LZ4FrameDecompressor()
            out += d.decompress(data)
            data = d.unused_data if d.eof else b""
        return bytes(out)
    if encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompress

        return bytes(_zstd_decompress(data))
    raise _CHError.of(36, "BAD_ARGUMENTS", f"Unknown Content-Encoding {encoding!r}")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
    for enc in (e.strip().lower() for e in accept.split(",")):
        if enc == "lz4":
            try:
                import lz4.frame
            except ImportError:  # pragma: no cover - clickhouse-connect only asks when it has it
                continue
            return lz4.frame.compress(data), "lz4"
        if enc == "zstd":
            try:
                from clickhouse_connect.driver.compression import _zstd_compress
            except ImportError:  # pragma: no cover
                continue
            return bytes(_zstd_compress(data)), "zstd"
        if enc == "gzip":
            return gzip.compress(data, 1), "gzip"
        if enc == "deflate":
            return zlib.compress(data, 1), "deflate"
    return data, None


class _Engine:
    """One chdb session, its queries serialised by a lock."""

    def __init__(self, path: str, timezone: str | None = None) -> None:
        import chdb.session

        self.session = chdb.session.Session(path)  # type: ignore[no-untyped-call]
        self.lock = threading.Lock()
        self.version = self._raw("SELECT version()", "TabSeparated").decode().strip()
        # the server's own settings, which a request's settings override for that request only
        self._base: dict[str, str] = {}
        if timezone:
            self._base["session_timezone"] = timezone
            self._raw(f"SET session_timezone = '{_quote(timezone)}'", "TabSeparated")
        self.timezone = self._raw("SELECT timezone()", "TabSeparated").decode().strip()
        self._settings: dict[str, str] = {}
        self._database = "default"
        self.queries = 0

    def _raw(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> bytes:
        try:
            res = self.session.query(sql, fmt, params=params or {})  # type: ignore[no-untyped-call]
        except Exception as e:  # chdb raises its ChdbError with the engine's message
            msg = str(e)
            m = _CODE_RE.search(msg)
            raise _CHError(int(m.group(1)) if m else 1001, msg) from None
        return bytes(res.bytes()) if res is not None else b""

    def _use(self, database: str, settings: dict[str, str]) -> None:
        if database != self._database:
            self._raw(f"USE `{database.replace('`', '')}`", "TabSeparated")
            self._database = database
        for name in [n for n in self._settings if n not in settings]:
            base = self._base.get(name)
            value = f"'{_quote(base)}'" if base is not None else "DEFAULT"
            self._raw(f"SET {name} = {value}", "TabSeparated")
            del self._settings[name]
        for name, value in settings.items():
            if self._settings.get(name) != value:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise _CHError.of(115, "UNKNOWN_SETTING", f"Unknown setting {name!r}")
                self._raw(f"SET {name} = '{_quote(value)}'", "TabSeparated")
                self._settings[name] = value

    def run(
        self,
        sql: str,
        fmt: str,
        params: dict[str, str],
        settings: dict[str, str],
        database: str,
    ) -> bytes:
        with self.lock:
            self.queries += 1
            self._use(database, settings)
            return self._raw(sql, fmt, params)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: _Engine
    password: str | None
    tmpdir: str

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- transport ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            # a client that dies mid-body must not get half its insert stored: EOF before the
            # last chunk is an error, as on a server
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ValueError("the body ended before its last chunk")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ValueError("the body ended inside a chunk")
                out += chunk
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise ValueError("the body is shorter than its Content-Length")
        return data

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, message: str, query_id: str) -> None:
        text = message.strip()
        print(f"error {code} query_id={query_id}: {text[:500]}", file=sys.stderr, flush=True)
        if not text.startswith("Code:"):
            text = f"Code: {code}. DB::Exception: {text}"
        body = f"{text} (version {self.engine.version})\n".encode()
        self._send(
            _HTTP_STATUS.get(code, 500),
            body,
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": self.engine.timezone,
            },
        )

    # -- routes ---------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path
        if path in ("/ping", "/replicas_status"):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        self._query()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._query()

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.do_GET()

    def _authorised(self, params: dict[str, str]) -> bool:
        if self.password is None:
            return True
        import base64

        given = params.get("password")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError):
                given = base64.b64decode(auth[6:]).decode().partition(":")[2]
        given = self.headers.get("X-ClickHouse-Key", given)
        return given == self.password

    def _query(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            raw = self._body()
        except (ValueError, OSError) as e:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._error(33, f"Cannot read all data: {e}. (CANNOT_READ_ALL_DATA)", query_id)
            return
        try:
            self._answer(params, raw, query_id)
        except _CHError as e:
            self._error(e.code, str(e), query_id)
        except Exception as e:  # a harness bug: say so as a ClickHouse error, do not hang up
            self._error(1001, f"harness error: {type(e).__name__}: {e}. (STD_EXCEPTION)", query_id)

    def _answer(self, params: dict[str, str], raw: bytes, query_id: str) -> None:
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + raw
            )
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name is None:
                    continue
                payload = part.get_payload(decode=True)
                payload = payload if isinstance(payload, bytes) else b""
                if part.get_filename():
                    raise _CHError.of(
                        48, "NOT_IMPLEMENTED", "the test harness takes no external data"
                    )
                params[str(name)] = payload.decode()
            raw = b""
        if not self._authorised(params):
            raise _CHError.of(
                516,
                "AUTHENTICATION_FAILED",
                "default: Authentication failed: password is incorrect, or there is no user with"
                " such name",
            )
        body = _decompress(raw, self.headers.get("Content-Encoding", ""))
        query_param = params.get("query", "")
        # A server reads the query parameter, a newline, then the body, as one stream.
        full = (
            (query_param.encode() + b"\n" + body)
            if query_param and body
            else (query_param.encode() or body)
        )
        binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")
        }
        database = params.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        m = _INSERT_RE.match(full)
        data = full[m.end() :] if m else b""
        if m and not data:  # nothing to insert (the engine would wait for input)
            self._ok(b"", "TabSeparated", query_id, time.monotonic_ns())
            return
        if m:
            target, fmt = m.group(1).decode(), m.group(2).decode()
            fd, path = tempfile.mkstemp(dir=self.tmpdir, suffix=f".{fmt.lower()}")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                sql = f"{target} FROM INFILE '{path}' FORMAT {fmt}"
                started = time.monotonic_ns()
                self.engine.run(sql, "TabSeparated", binds, settings, database)
            finally:
                os.unlink(path)
            self._ok(b"", "TabSeparated", query_id, started)
            return
        sql = full.decode()
        if not sql.strip():
            raise _CHError.of(62, "SYNTAX_ERROR", "Empty query")
        fm = _FORMAT_RE.search(sql)
        fmt = fm.group(1) if fm else params.get("default_format") or "TabSeparated"
        started = time.monotonic_ns()
        out = self.engine.run(sql, fmt, binds, settings, database)
        compressed, encoding = out, None
        if params.get("enable_http_compression") == "1" and out:
            compressed, encoding = _compress(out, self.headers.get("Accept-Encoding", ""))
        self._ok(compressed, fmt, query_id, started, encoding=encoding, result_bytes=len(out))

    def _ok(
        self,
        body: bytes,
        fmt: str,
        query_id: str,
        started: int,
        *,
        encoding: str | None = None,
        result_bytes: int = 0,
    ) -> None:
        summary = {
            "read_rows": "0",
            "read_bytes": "0",
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": str(result_bytes),
            "elapsed_ns": str(time.monotonic_ns() - started),
        }
        headers = {
            "Content-Type": "application/octet-stream"
            if fmt in ("Native", "Arrow", "ArrowStream", "Parquet", "RowBinary")
            else "text/plain; charset=UTF-8",
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "sightline-test-harness",
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        if encoding:
            headers["Content-Encoding"] = encoding
        self._send(200, body, headers)


def serve(
    path: str, host: str, port: int, password: str | None, timezone: str | None = None
) -> None:
    """Serve until killed (or until the parent process goes away); prints ``PORT <n>`` first."""
    engine = _Engine(path, timezone)
    tmpdir = tempfile.mkdtemp(prefix="chhttp-")
    handler = type(
        "Handler", (_Handler,), {"engine": engine, "password": password, "tmpdir": tmpdir}
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    parent = os.getppid()

    def watch_parent() -> None:  # a test run that dies must not leave the harness behind
        while os.getppid() == parent:
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


class ClickHouseHTTP:
    """A ClickHouse HTTP endpoint on a free loopback port, in its own process (see module doc).

    The engine keeps its data under ``path``; ``password`` (if given) is required of every
    client; ``timezone`` is the server's time zone (``timezone()``, and how DateTime values
    without one are read), the machine's unless given: servers often run in local time.
    ``store_url(db)`` is the ``--store`` URL of a database on it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        password: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        timezone: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.timezone = timezone
        self.host = host
        self.port = port
        self.password = password
        self.log_path = Path(log_path) if log_path else self.path.parent / "clickhouse-http.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def store_url(self, database: str = "sightline") -> str:
        """``clickhouse://default:PASSWORD@HOST:PORT/database``."""
        return f"clickhouse://default:{self.password or ''}@{self.host}:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> ClickHouseHTTP:
        if self._proc is not None:
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-c", "from sightline.testing._clickhouse_http import main; main()"]
        argv += ["--path", str(self.path)]
        argv += ["--host", self.host, "--port", str(self.port)]
        if self.password is not None:
            argv += ["--password", self.password]
        if self.timezone:
            argv += ["--timezone", self.timezone]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(  # noqa: S603 - our own module
            argv, stdout=subprocess.PIPE, stderr=log, env=env
        )
        log.close()
        if self._proc.stdout is None:  # pragma: no cover - stdout=PIPE above
            raise RuntimeError("no pipe from the harness")
        deadline = time.monotonic() + timeout_s
        line = b""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if line.startswith(b"PORT ") or not line:
                break
        if not line.startswith(b"PORT "):
            self.stop()
            text = self.log_path.read_text(errors="replace")
            raise RuntimeError(f"ClickHouse HTTP harness did not start: {text}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> ClickHouseHTTP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="A ClickHouse HTTP endpoint on chdb, for tests.")
    p.add_argument("--path", required=True, help="the engine's data directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--password", default=None)
    p.add_argument(
        "--timezone", default=None, help="the server's time zone (default: the machine's)"
    )
    a = p.parse_args(argv)
    serve(a.path, a.host, a.port, a.password, a.timezone)


if __name__ == "__main__":
    main()
