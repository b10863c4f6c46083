"""The ``sightline`` command: ``serve`` (the default), ``demo``, ``projects``, ``eval``."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sightline import __version__

__all__ = ["main"]


class _DefaultGroup(click.Group):
    """A group that runs ``serve`` when no command is given."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "--version")):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup)
@click.version_option(__version__, prog_name="sightline")
def main() -> None:
    """Sightline: observability and evaluation for LLM systems."""


def _settings(**flags: Any) -> Any:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from sightline.config import Settings

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as e:
        raise click.ClickException(f"invalid settings: {e}") from None
    except SettingsError as e:  # a SIGHTLINE_* value that should be JSON and is not
        cause = f": {e.__cause__}" if e.__cause__ is not None else ""
        raise click.ClickException(f"invalid settings: {e}{cause}") from None


def _run(settings: Any) -> None:
    import logging

    import uvicorn

    from sightline._logging import configure_logging
    from sightline.errors import SightlineError
    from sightline.server import create_app

    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SightlineError as e:
        raise click.ClickException(str(e)) from None
    # after the settings' own errors, before the lifespan starts decode workers and evaluator
    # processes and takes the DuckDB lock
    _check_http_bind(settings.host, settings.port)
    failed, no_traceback = _catch_startup_errors(app)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(no_traceback)
    try:
        with _bind_failure(settings.host, settings.port):
            uvicorn.run(
                app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                timeout_graceful_shutdown=10,
            )
    except SystemExit:
        if failed:  # uvicorn exits 3 after a failed startup
            raise click.ClickException(f"cannot start: {failed[0]}") from None
        raise
    finally:
        uvicorn_log.removeFilter(no_traceback)


def _bind_error(host: str, port: int, e: OSError) -> click.ClickException:
    import errno
    import socket

    if isinstance(e, socket.gaierror):
        reason = f"cannot resolve host {host!r} ({e.strerror or e})"
    elif e.errno == errno.EADDRINUSE:
        reason = f"address already in use (another process listens on port {port})"
    elif e.errno == errno.EADDRNOTAVAIL:
        reason = f"{host} is not an address of this machine ({e.strerror})"
    else:
        reason = e.strerror or str(e)
    return click.ClickException(f"cannot start: cannot bind HTTP to {host}:{port}: {reason}")


def _check_http_bind(host: str, port: int) -> None:
    """Raise ClickException if uvicorn could not listen on ``host:port``, before anything starts.

    uvicorn binds only after the app's lifespan has started (store, workers, evaluators) and
    answers a failure with one log line and exit code 3. This binds as asyncio's
    ``create_server`` will (every address the host resolves to, SO_REUSEADDR, v6-only), then
    lets go: a port another process takes in between is still caught by :func:`_bind_failure`.
    """
    import socket

    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
    except OSError as e:
        raise _bind_error(host, port, e) from None
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def _bind_failure(host: str, port: int) -> Iterator[None]:
    """Turn uvicorn's own bind failure (log line, exit 3) into the ``cannot start`` error.

    uvicorn has already shut the app's lifespan down when it exits, so nothing is left running.
    """
    import logging

    errors: list[OSError] = []

    def catch(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and isinstance(record.msg, OSError):
            errors.append(record.msg)
            return False  # the Error: line says it
        return True

    log = logging.getLogger("uvicorn.error")
    log.addFilter(catch)
    try:
        yield
    except SystemExit:
        if errors:
            raise _bind_error(host, port, errors[0]) from None
        raise
    finally:
        log.removeFilter(catch)


def _catch_startup_errors(app: Any) -> tuple[list[BaseException], Any]:
    """Collect what fails the app's startup for a reason the user can fix, untraced.

    The lifespan opens the store, bootstraps accounts and binds the gRPC port: a data dir that
    is a file, a DuckDB file another server holds, a taken port or a bad SIGHTLINE_* value
    fails there. Starlette hands uvicorn the whole traceback to log; for these the command
    prints one ``Error:`` line instead (other exceptions keep their traceback: they are bugs).
    Returns the errors caught and a filter of uvicorn's log that drops that traceback.
    """
    import logging
    from contextlib import asynccontextmanager

    from sightline.errors import SightlineError

    failed: list[BaseException] = []
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> Any:
        started = False
        try:
            async with inner(a) as state:
                started = True
                yield state
        except (SightlineError, OSError) as e:
            if not started:
                failed.append(e)
            raise

    def no_traceback(record: logging.LogRecord) -> bool:
        return not (failed and str(record.msg).startswith("Traceback"))

    app.router.lifespan_context = lifespan
    return failed, no_traceback


_serve_options = [
    click.option("--host", default=None, help="Address to listen on [127.0.0.1]."),
    click.option("--port", type=int, default=None, help="HTTP port [7600]."),
    click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Directory of the DuckDB store [./sightline-data].",
    ),
    click.option(
        "--store",
        default=None,
        help="Store URL: clickhouse://user:pw@host:8123/db, chdb:///dir, duckdb:///file"
        " [the DuckDB file in --data-dir].",
    ),
    click.option(
        "--duckdb-memory-limit",
        default=None,
        help="DuckDB's memory limit, e.g. 512MB, 2GB or 25% of RAM [256MB].",
    ),
    click.option(
        "--otlp-grpc-port", type=int, default=None, help="OTLP/gRPC port, 0 to turn off [4317]."
    ),
    click.option(
        "--ingest-workers",
        type=int,
        default=None,
        help="Decode processes; 0 decodes in the server process [one per core].",
    ),
    click.option(
        "--prices-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="YAML/JSON price overrides.",
    ),
    click.option(
        "--alerts",
        "alerts_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="YAML file of alert rules, notification channels and drift jobs.",
    ),
    click.option(
        "--budgets",
        "budgets_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="YAML file of budgets (see docs/cost.md).",
    ),
    click.option(
        "--monitor-interval",
        "monitor_interval_s",
        type=float,
        default=None,
        help="Seconds between alert evaluations; 0 turns the monitor off [30].",
    ),
    click.option(
        "--role",
        type=click.Choice(["all", "ingest", "api", "worker", "monitor"]),
        default=None,
        help="What this process runs; split roles need a shared store (docs/scale-out.md) [all].",
    ),
    click.option(
        "--eval-workers",
        type=click.IntRange(1, 64),
        default=None,
        help="Evaluation workers in this process, each its own evaluator process [1].",
    ),
    click.option(
        "--redis-url",
        default=None,
        help="redis://HOST:PORT/DB coordinating workers and the monitor across processes.",
    ),
    click.option(
        "--gateway-upstream",
        default=None,
        help="Mount the OpenAI-compatible gateway at /gateway, forwarding to this base URL"
        " (docs/gateway.md).",
    ),
    click.option(
        "--gateway-cache",
        type=click.Choice(["off", "exact", "semantic"]),
        default=None,
        help="The mounted gateway's cache: repeated (exact) or similar (semantic) requests [off].",
    ),
    click.option(
        "--gateway-rate-limit",
        default=None,
        help="The mounted gateway's requests per Sightline key: N/s, N/min or N/h [none].",
    ),
    click.option(
        "--gateway-routes",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="The mounted gateway's routes file: fallback upstreams, retry budget, breakers.",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["json", "console"]),
        default=None,
        help="Log format [json].",
    ),
]


def _with_serve_options(f: Any) -> Any:
    for opt in reversed(_serve_options):
        f = opt(f)
    return f


@main.command()
@_with_serve_options
def serve(**flags: Any) -> None:
    """Serve OTLP (HTTP and gRPC), the REST API and /metrics.

    Settings come from these flags, then SIGHTLINE_* environment variables, then defaults.
    """
    _run(_settings(**flags))


DEMO_PROJECT = "demo"
DEMO_KEY = "sl_demo_key_do_not_use_in_production"
DEMO_ADMIN_EMAIL = "admin@demo.local"
DEMO_ADMIN_PASSWORD = "demo-password-change-me"  # noqa: S105 - printed by the demo, like its key


@main.command()
@_with_serve_options
@click.option(
    "--rate",
    # 0 or less killed the traffic thread (ZeroDivisionError, negative sleep); each request is
    # a thread living for its simulated latency, so the rate is bounded
    type=click.FloatRange(0, 200, min_open=True),
    default=4.0,
    show_default=True,
    help="Simulated user requests per second (at most 200).",
)
@click.option(
    "--scenario",
    type=click.Choice(
        [
            "latency-spike",
            "error-burst",
            "hallucinations",
            "toxic",
            "cost-spike",
            "topic-drift",
            "outage",
        ]
    ),
    default=None,
    help="Inject this fault into the traffic on a schedule (healthy traffic without).",
)
def demo(rate: float, scenario: str | None, **flags: Any) -> None:
    """Serve, and run a simulated RAG support app that sends traces to the server.

    With --scenario, the app runs healthy for a while, then injects the fault for a few
    minutes, then recovers, again and again: watch GET /api/v1/alerts.
    """
    from importlib import resources

    from sightline.demo import SCENARIOS, start_demo_traffic

    if math.isnan(rate):  # FloatRange lets NaN through
        raise click.BadParameter("not a number", param_hint="'--rate'")
    flags.setdefault("log_format", None)
    if flags.get("alerts_file") is None:
        # short windows, so alerts fire and resolve within minutes
        flags["alerts_file"] = Path(str(resources.files("sightline.demo").joinpath("alerts.yaml")))
    if flags.get("monitor_interval_s") is None:
        flags["monitor_interval_s"] = 10.0
    settings = _settings(
        init_project=DEMO_PROJECT,
        init_api_key=DEMO_KEY,
        init_admin_email=DEMO_ADMIN_EMAIL,
        init_admin_password=DEMO_ADMIN_PASSWORD,
        drift_interval_s=60.0,
        **flags,
    )
    # before the traffic starts: it would go to whatever else holds the port
    _check_http_bind(settings.host, settings.port)
    base = f"http://{settings.host}:{settings.port}"
    click.echo(
        f"Sightline demo on {base}\n"
        f"  dashboard: {base}/login    email: {DEMO_ADMIN_EMAIL}"
        f"    password: {DEMO_ADMIN_PASSWORD}\n"
        f"  project: {DEMO_PROJECT}    API key: {DEMO_KEY}\n"
        f"  try:  curl -H 'Authorization: Bearer {DEMO_KEY}' '{base}/api/v1/spans?limit=5'\n"
        f"        curl -H 'Authorization: Bearer {DEMO_KEY}' "
        f"'{base}/api/v1/metrics?name=latency_ms&agg=p95&group_by=model'\n"
        f"        curl -H 'Authorization: Bearer {DEMO_KEY}' '{base}/api/v1/alerts?status=firing'\n"
        f"  API docs: {base}/docs    Ctrl-C stops.",
        err=True,
    )
    if scenario:
        sc = SCENARIOS[scenario]
        click.echo(
            f"  scenario {scenario}: {sc.description}\n"
            f"    healthy for {sc.warmup_s:.0f}s, then the fault for {sc.fault_s:.0f}s, then"
            f" recovery; repeats.",
            err=True,
        )
    start_demo_traffic(base, DEMO_KEY, rate=rate, scenario=scenario)
    _run(settings)


@main.group()
def projects() -> None:
    """Manage projects and their API keys (with the server stopped)."""


@projects.command("create")
@click.argument("name")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the DuckDB store [./sightline-data].",
)
def projects_create(name: str, data_dir: Path | None) -> None:
    """Create project NAME and print its new API key (shown only once)."""
    from sightline._logging import configure_logging
    from sightline.errors import SightlineError

    configure_logging("warning", "console")  # stdout carries only the key, for scripts
    from sightline.server._auth import create_project_with_key
    from sightline.store import DuckDBStore

    settings = _settings(data_dir=data_dir)
    try:
        store = DuckDBStore(
            settings.db_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
        )
    except SightlineError as e:
        raise click.ClickException(
            f"{e}\n(is `sightline serve` running on this data dir? stop it first)"
        ) from None
    try:
        store.migrate()
        key = create_project_with_key(store, name)
    except SightlineError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
    click.echo(key)


@main.group("eval")
def eval_() -> None:
    """Evaluate datasets offline: scores, summaries and a regression gate for CI."""


def _evaluator_options(value: str | None) -> dict[str, dict[str, Any]]:
    import json

    import yaml

    if not value:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as e:
            raise click.ClickException(f"--options {value}: {e.strerror or e}") from None
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise click.ClickException(f"--options: not JSON or YAML: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise click.ClickException(
            '--options: expected a mapping of evaluator name to options, e.g. {"format": '
            '{"json": true}}'
        )
    return data


def _check_writable(out: Path) -> None:
    """Raise ClickException when ``out`` cannot be written (without emptying it)."""
    existed = out.exists()
    try:
        with out.open("a", encoding="utf-8"):
            pass
    except OSError as e:
        raise click.ClickException(f"--out {out}: {e.strerror or e}") from None
    if not existed:
        out.unlink(missing_ok=True)


@eval_.command("run")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--evaluators",
    default=None,
    help="Comma-separated evaluator names [every registered one but format, llm_judge and "
    "reference_similarity, unless given --options].",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Results JSONL."
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="A previous results JSONL: exit 1 when an evaluator's mean drops more than --max-drop.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0.0),
    default=0.02,
    show_default=True,
    help="Largest allowed drop of an evaluator's mean against the baseline.",
)
@click.option(
    "--max-coverage-drop",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.1,
    show_default=True,
    help="Largest allowed drop of the share of rows an evaluator scored against the baseline "
    "(scoring no row always fails).",
)
@click.option(
    "--options",
    "options_",
    default=None,
    help='Evaluator options: JSON, or a JSON/YAML file ({"llm_judge": {"base_url": ...}}).',
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def eval_run(
    dataset: Path,
    evaluators: str | None,
    out: Path | None,
    baseline: Path | None,
    max_drop: float,
    max_coverage_drop: float,
    options_: str | None,
    batch_size: int,
) -> None:
    """Score every row of DATASET (JSONL) and print a summary table.

    A row has `question`, `answer`, optional `contexts` (list of strings), `reference` and `id`.
    Each output row is the input row plus `scores: {evaluator: {score, label, passed,
    explanation}}`. Exits 1 when an evaluator fails (raises, or labels any row `failed`) or,
    with --baseline, when an evaluator's mean dropped by more than --max-drop, or an evaluator
    the baseline scored scores no row (or a share of the rows smaller by more than
    --max-coverage-drop).

    Example: sightline eval run golden.jsonl --evaluators relevance,context_relevance
    --out results.jsonl --baseline last.jsonl --max-drop 0.02
    """
    import json

    from sightline.errors import ConfigError
    from sightline.evals import (
        Summary,
        available_evaluators,
        compare_coverage,
        compare_to_baseline,
        default_evaluator_names,
        evaluate_rows,
        format_summary,
        load_evaluators,
        read_jsonl,
        summarize,
    )

    if math.isnan(max_drop):  # FloatRange lets NaN through, and no drop is more than NaN
        raise click.BadParameter("not a number", param_hint="'--max-drop'")
    if math.isnan(max_coverage_drop):
        raise click.BadParameter("not a number", param_hint="'--max-coverage-drop'")
    opts = _evaluator_options(options_)
    try:
        rows = read_jsonl(dataset)
        base_rows = read_jsonl(baseline, what="baseline") if baseline else None
        if base_rows is not None and not any(isinstance(r.get("scores"), dict) for r in base_rows):
            # a dataset given for a results file: the gate would compare nothing and pass
            raise ConfigError(
                f"baseline {baseline}: no row has 'scores'; give the --out of an earlier eval run"
            )
        names = (
            [n.strip() for n in evaluators.split(",") if n.strip()]
            if evaluators is not None  # an empty --evaluators names none, not the defaults
            else default_evaluator_names(configured=opts)
        )
        if not names:
            raise ConfigError("no evaluators to run")
        unknown = sorted(set(opts) - set(available_evaluators()))
        if unknown:  # a misspelt name's options would be dropped without a word
            raise ConfigError(
                f"--options names no registered evaluator: {', '.join(unknown)}; "
                f"registered: {', '.join(available_evaluators())}"
            )
        unused = sorted(set(opts) - set(names))
        if out is not None:
            _check_writable(out)  # before the evaluation, which may be long and paid for
        env_key = os.environ.get("SIGHTLINE_EVAL_JUDGE_API_KEY")
        if env_key and "llm_judge" in names:  # as serve: an api_key in --options wins
            opts = opts | {"llm_judge": {"api_key": env_key, **opts.get("llm_judge", {})}}
        evs = load_evaluators(names, opts)
        results, errors = evaluate_rows(rows, evs, source=str(dataset), batch_size=batch_size)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if out is not None:
        try:
            with out.open("w", encoding="utf-8") as f:
                for r in results:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        except OSError as e:
            raise click.ClickException(f"--out {out}: {e.strerror or e}") from None
    summary = summarize(results)
    # an evaluator run that scored no row (it applied to none) still gets its line in the table
    summary = {
        n: summary.get(n, Summary(n, 0, None, None, 0)) for n in sorted(set(summary) | set(names))
    }
    base_summary = summarize(base_rows) if base_rows is not None else None
    if unused:
        click.echo(f"note: --options for evaluators not run: {', '.join(unused)}", err=True)
    click.echo(f"{len(results)} rows from {dataset}")
    click.echo(format_summary(summary, base_summary))
    failed = False
    for name, err in errors.items():
        click.echo(f"error: evaluator {name} failed: {err}", err=True)
        failed = True
    for name, s in summary.items():
        if s.num_failed and name not in errors:
            # rows the evaluator itself labelled failed (a judge that answered garbage, or is not
            # running): each is a case it could not grade, so its mean is not the run's
            first = next(
                (
                    r["scores"][name].get("explanation")
                    for r in results
                    if r["scores"].get(name, {}).get("label") == "failed"
                ),
                None,
            )
            click.echo(
                f"error: evaluator {name} failed on {s.num_failed} of {len(results)} rows"
                + (f", e.g.: {first}" if first else ""),
                err=True,
            )
            failed = True
    if base_summary is not None:
        missing = [n for n in summary if n not in base_summary]
        if missing:
            click.echo(f"note: not in the baseline, not compared: {', '.join(missing)}", err=True)
        for cov in compare_coverage(
            summary,
            len(results),
            base_summary,
            len(base_rows or ()),
            names=names,
            max_drop=max_coverage_drop,
        ):
            # e.g. empty answers: the evaluators skip them, and a mean over none passes any gate
            click.echo(
                f"regression: {cov.name} scored {cov.scored} of {cov.rows} rows, the baseline "
                f"{cov.baseline_scored} of {cov.baseline_rows}"
                + (
                    " (it applied to no row of this run)"
                    if cov.scored == 0
                    else f", a drop of {cov.drop:.3f}, more than --max-coverage-drop "
                    f"{max_coverage_drop}"
                ),
                err=True,
            )
            failed = True
        for reg in compare_to_baseline(summary, base_summary, max_drop=max_drop):
            click.echo(
                f"regression: {reg.name} mean dropped by {reg.drop:.3f} "
                f"({reg.baseline_mean:.3f} -> {reg.mean:.3f}), more than --max-drop {max_drop}",
                err=True,
            )
            failed = True
    if failed:
        raise SystemExit(1)


_duckdb_options = [
    click.option(
        "--duckdb-memory-limit",
        default=None,
        help="DuckDB's memory limit, e.g. 512MB, 2GB or 25% of RAM [256MB, as serve].",
    ),
    click.option(
        "--duckdb-threads",
        type=int,
        default=None,
        help="DuckDB's worker threads [one per core].",
    ),
]


def duckdb_options(f: Any) -> Any:
    """``--duckdb-memory-limit`` and ``--duckdb-threads`` for a command that opens DuckDB.

    Also read from SIGHTLINE_DUCKDB_MEMORY_LIMIT and SIGHTLINE_DUCKDB_THREADS, as ``serve`` does.
    """
    for opt in reversed(_duckdb_options):
        f = opt(f)
    return f


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the DuckDB store [./sightline-data].",
)
@duckdb_options
def compact(
    data_dir: Path | None, duckdb_memory_limit: str | None, duckdb_threads: int | None
) -> None:
    """Rewrite the store so erased and expired rows leave the file (with the server stopped).

    DuckDB frees the blocks of deleted rows without overwriting them: after a GDPR erasure,
    run this to remove the values from the file's bytes too.
    """
    from sightline.errors import SightlineError
    from sightline.store._duckdb_security import compact as compact_store

    settings = _settings(
        data_dir=data_dir, duckdb_memory_limit=duckdb_memory_limit, duckdb_threads=duckdb_threads
    )
    if not settings.db_path.exists():
        raise click.ClickException(f"no store at {settings.db_path}")
    try:
        before, after = compact_store(
            settings.db_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            report=click.echo,
        )
    except SightlineError as e:
        raise click.ClickException(
            f"{e}\n(is `sightline serve` running on this data dir? stop it first)"
        ) from None
    click.echo(f"compacted {settings.db_path}: {before} -> {after} bytes")


@main.command()
@click.option(
    "--from",
    "source",
    required=True,
    help="The DuckDB store to copy: duckdb:///path/sightline.duckdb (or the file's path).",
)
@click.option(
    "--to",
    "target",
    required=True,
    help="The ClickHouse store to fill: clickhouse://user:pw@host:8123/db or chdb:///dir.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows read and inserted at a time.",
)
@duckdb_options
def migrate(
    source: str,
    target: str,
    chunk_rows: int,
    duckdb_memory_limit: str | None,
    duckdb_threads: int | None,
) -> None:
    """Copy an embedded DuckDB store into ClickHouse (with the server stopped).

    Spans keep their ingest order; every other table both stores have is copied too. A row
    already in the target is skipped, so an interrupted run is resumed by running the same
    command again, and a second run adds nothing. The source is not changed (beyond
    bringing its schema up to date).

    Example (docs/deploy.md):

        sightline migrate --from /srv/data/sightline.duckdb --to chdb:///srv/ch
    """
    import time

    from sightline.errors import SightlineError
    from sightline.store._migrate import migrate_store

    settings = _settings(duckdb_memory_limit=duckdb_memory_limit, duckdb_threads=duckdb_threads)
    started = time.monotonic()
    try:
        results = migrate_store(
            source,
            target,
            chunk_rows=chunk_rows,
            progress=lambda m: click.echo(m),
            duckdb_memory_limit=settings.duckdb_memory_limit,
            duckdb_threads=settings.duckdb_threads,
        )
    except SightlineError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        raise click.ClickException(
            "interrupted: run the same command again to resume (rows already copied are skipped)"
        ) from None
    click.echo(f"done in {time.monotonic() - started:.1f}s")
    width = max(len(r.table) for r in results)
    click.echo(f"{'table':<{width}}  {'source':>10}  {'added':>10}  {'already there':>13}")
    for r in results:
        click.echo(
            f"{r.table:<{width}}  {r.source_rows:>10}  {r.added:>10}  {r.already_present:>13}"
        )


def _rate(value: str | None) -> tuple[int, int]:
    """``60/min`` -> (60, 60); ``10/s`` -> (10, 1); ``1000/h`` -> (1000, 3600)."""
    from sightline.gateway import parse_rate

    try:
        return parse_rate(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--rate-limit") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=7601, show_default=True)
@click.option(
    "--upstream",
    required=True,
    help="OpenAI-compatible base URL, with its /v1 (https://api.openai.com/v1).",
)
@click.option(
    "--server",
    default="http://127.0.0.1:7600",
    show_default=True,
    help="Sightline server that receives the spans and answers budget checks; '' for none.",
)
@click.option(
    "--api-key",
    envvar="SIGHTLINE_API_KEY",
    default=None,
    help="Sightline API key for requests without an x-sightline-api-key header.",
)
@click.option(
    "--redis", "redis_url", default=None, help="redis://HOST:PORT/DB shared by instances."
)
@click.option(
    "--redis-prefix", default="sightline:gw:", show_default=True, help="Prefix of the Redis keys."
)
@click.option(
    "--cache",
    type=click.Choice(["off", "exact", "semantic"]),
    default="off",
    show_default=True,
    help="Answer repeated (exact) or similar (semantic) requests from the cache.",
)
@click.option("--cache-ttl", type=click.IntRange(min=1), default=3600, show_default=True)
@click.option(
    "--semantic-threshold",
    type=click.FloatRange(-1, 1),
    default=0.92,
    show_default=True,
    help="Least cosine similarity of two questions for a semantic hit.",
)
@click.option(
    "--rate-limit",
    default=None,
    help="Requests per Sightline key (x-sightline-api-key): N/s, N/min or N/h.",
)
@click.option(
    "--routes",
    "routes_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML file of routes: fallback upstreams per model, retry budget, circuit breakers.",
)
@click.option(
    "--upstream-timeout",
    "upstream_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the upstream's whole answer (504 upstream_timeout past it); a"
    " routes file's timeout_s sets it per upstream.",
)
@click.option(
    "--max-response-bytes",
    envvar="SIGHTLINE_GATEWAY_MAX_RESPONSE_BYTES",
    type=click.IntRange(min=1024),
    default=64 << 20,
    show_default=True,
    help="Most bytes read of one upstream answer, a stream's as a whole (502"
    " upstream_response_too_large past it, or an error event ending the stream).",
)
@click.option(
    "--body-idle-timeout",
    "body_idle_timeout_s",
    envvar="SIGHTLINE_BODY_IDLE_TIMEOUT_S",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a request body may go without a byte arriving (408 and the connection closed).",
)
@click.option(
    "--body-timeout",
    "body_timeout_s",
    envvar="SIGHTLINE_BODY_TIMEOUT_S",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Most seconds a whole request body may take to arrive (408 past it).",
)
@click.option(
    "--max-buffered-body-bytes",
    envvar="SIGHTLINE_MAX_BUFFERED_BODY_BYTES",
    type=click.IntRange(min=1024),
    default=256 << 20,
    show_default=True,
    help="Bytes of request bodies held at once over all requests (503 with Retry-After past it).",
)
@click.option(
    "--prices-file",
    envvar="SIGHTLINE_PRICES_FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML/JSON file of price overrides, as the server's --prices-file (docs/cost.md).",
)
@click.option("--log-format", type=click.Choice(["json", "console"]), default="json")
def gateway(
    host: str,
    port: int,
    upstream: str,
    server: str,
    api_key: str | None,
    redis_url: str | None,
    redis_prefix: str,
    cache: str,
    cache_ttl: int,
    semantic_threshold: float,
    rate_limit: str | None,
    routes_path: str | None,
    upstream_timeout_s: float,
    max_response_bytes: int,
    body_idle_timeout_s: float,
    body_timeout_s: float,
    max_buffered_body_bytes: int,
    prices_file: str | None,
    log_format: str,
) -> None:
    """Serve the OpenAI-compatible gateway: spans, budgets, rate limits, cache (docs/gateway.md)."""
    import uvicorn

    from sightline._logging import configure_logging
    from sightline.gateway import GatewayOptions, check_cache, create_gateway_app

    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter("expected an http(s) URL", param_hint="--upstream")
    try:
        check_cache(cache)
    except ValueError as e:
        raise click.ClickException(f"--cache {cache}: {e}") from None
    count, window = _rate(rate_limit)
    failover = None
    if routes_path is not None:
        from sightline.gateway._failover import load_routes

        try:
            failover = load_routes(routes_path)
        except ValueError as e:
            raise click.BadParameter(f"{routes_path}: {e}", param_hint="--routes") from None
    prices: tuple[Any, ...] = ()
    if prices_file is not None:
        from sightline.errors import ConfigError
        from sightline.pricing import load_overrides

        try:
            prices = tuple(load_overrides(Path(prices_file)))
        except ConfigError as e:
            raise click.BadParameter(str(e), param_hint="--prices-file") from None
    configure_logging("info", log_format)
    opts = GatewayOptions(
        upstream=upstream,
        server=server or None,
        api_key=api_key,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        cache=cache,  # type: ignore[arg-type]
        cache_ttl_s=cache_ttl,
        semantic_threshold=semantic_threshold,
        rate_limit=count,
        rate_window_s=window,
        failover=failover,
        timeout_s=upstream_timeout_s,
        max_response_bytes=max_response_bytes,
        prices=prices,
        body_idle_timeout_s=body_idle_timeout_s,
        body_timeout_s=body_timeout_s,
        max_buffered_body_bytes=max_buffered_body_bytes,
    )
    if max_buffered_body_bytes < opts.max_body_bytes:
        raise click.BadParameter(
            f"{max_buffered_body_bytes} is below the gateway's largest body"
            f" ({opts.max_body_bytes} bytes): no body of that size could be received",
            param_hint="--max-buffered-body-bytes",
        )
    if redis_url:
        from sightline.gateway import check_redis

        try:
            check_redis(redis_url)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    _check_http_bind(host, port)
    # every call is a span already: no access log line per request on the hot path
    with _bind_failure(host, port):
        uvicorn.run(
            create_gateway_app(opts), host=host, port=port, log_config=None, access_log=False
        )


@main.command()
@click.argument("trace_id")
@click.option("--span", "span_id", default=None, help="The LLM span to replay [the trace's first].")
@click.option("--model", default=None, help="Replay with this model [the recorded one].")
@click.option("--gateway", "gateway_url", default="http://127.0.0.1:7601", show_default=True)
@click.option("--server", default="http://127.0.0.1:7600", show_default=True)
@click.option("--api-key", envvar="SIGHTLINE_API_KEY", required=True, help="Sightline API key.")
@click.option(
    "--provider-key",
    envvar="OPENAI_API_KEY",
    default="",
    help="The upstream's key [$OPENAI_API_KEY].",
)
@click.option(
    "--wait-scores", type=click.FloatRange(min=0), default=0.0, help="Seconds to wait for scores."
)
def replay(
    trace_id: str,
    span_id: str | None,
    model: str | None,
    gateway_url: str,
    server: str,
    api_key: str,
    provider_key: str,
    wait_scores: float,
) -> None:
    """Run a recorded LLM call again through the gateway and show both side by side."""
    import httpx

    from sightline.errors import SightlineError
    from sightline.gateway import format_side_by_side, replay_span

    try:
        res = replay_span(
            server=server,
            api_key=api_key,
            gateway=gateway_url,
            trace_id=trace_id,
            span_id=span_id,
            model=model,
            provider_key=provider_key,
            wait_scores_s=wait_scores,
        )
    except SightlineError as e:
        raise click.ClickException(str(e)) from None
    except httpx.HTTPError as e:
        raise click.ClickException(f"cannot reach the server or the gateway: {e}") from None
    click.echo(format_side_by_side(res))
