"""Settings: the one place that reads the environment.

Precedence: CLI flag > environment (``SIGHTLINE_*``) > default. Every setting is documented in
``docs/configuration.md``; a test fails when one is missing there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "check_memory_limit", "expand_env"]


def _default_workers() -> int:
    # Decoding is CPU-bound Python: one worker per core, none on a single core, and at most 4
    # (each is a ~100 MB process, and one DuckDB writer cannot take more than ~4 feed it).
    n = os.cpu_count() or 1
    return min(n, 4) if n > 1 else 0


_LOG_CHOICES = {
    "log_level": ("debug", "info", "warning", "error", "critical"),
    "log_format": ("json", "console"),
}


class Settings(BaseSettings):
    """Server settings."""

    model_config = SettingsConfigDict(env_prefix="SIGHTLINE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(7600, ge=0, le=65535, description="HTTP port: OTLP, API and dashboard.")
    otlp_grpc_port: int = Field(
        4317, ge=0, le=65535, description="OTLP/gRPC port; 0 turns the gRPC receiver off."
    )
    data_dir: Path = Field(Path("./sightline-data"), description="Where the DuckDB file lives.")
    store: str | None = Field(
        None,
        description="Store URL: duckdb:///path/file.duckdb, clickhouse://user:pw@host:8123/db"
        " or chdb:///path (the ClickHouse engine in-process); default the DuckDB file in"
        " data_dir.",
    )
    duckdb_memory_limit: str = Field(
        "256MB",
        description="DuckDB's memory limit (its buffer cache, indexes, query memory): a size"
        " such as 512MB, 1GB, 2GiB, or a share of RAM such as 25%. DuckDB's own default is 80%"
        " of RAM. 256MB holds a server under sustained ingest at ~0.6 GiB (its cache of table"
        " blocks duplicates the OS page cache; a checkpoint holds ~110 MiB); below it, reads"
        " may run out of memory during checkpoints.",
    )
    duckdb_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="DuckDB's worker threads; default one per core.",
    )
    max_body_bytes: int = Field(
        16 << 20, ge=1024, description="Largest request body, after decompression (413 above)."
    )
    body_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a request body may go without a byte arriving before the request"
        " is answered 408 and its connection closed.",
    )
    body_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Most seconds a whole request body may take to arrive (408 past it).",
    )
    max_buffered_body_bytes: int = Field(
        256 << 20,
        ge=1024,
        description="Bytes of request bodies the server holds at once, over every request being"
        " received or processed; a request that would pass it is answered 503 with"
        " Retry-After. At least max_body_bytes.",
    )
    max_queue_spans: int = Field(
        200_000, ge=1, description="Spans waiting for commit before ingest answers 503."
    )
    max_batch_spans: int = Field(50_000, ge=1, description="Most spans one commit takes.")
    commit_linger_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="Most a commit waits for requests still being decoded, to take them too "
        "(one insert of several requests costs far less CPU than one each); 0: never waits.",
    )
    test_store_fault_file: Path | None = Field(
        None,
        description="Test only: while this file exists, every commit fails as if the disk were"
        " full (ingest answers 503). Off by default; for fault tests.",
    )
    ingest_workers: int = Field(
        default_factory=_default_workers,
        ge=0,
        description="Processes that decode payloads; 0 decodes in the server process.",
    )
    max_text_bytes: int = Field(
        1 << 20,
        ge=256,
        description="Longest stored text (UTF-8 bytes): a text field, or a string in a span's"
        " messages, documents, attributes or events; a span's messages, documents and attributes"
        " hold at most 8 times this in all.",
    )
    prices_file: Path | None = Field(
        None, description="YAML/JSON file of price overrides (models: [{match, input_mtok, ...}])."
    )
    init_project: str | None = Field(
        None, description="Create this project at start if missing (headless bootstrap)."
    )
    init_api_key: str | None = Field(
        None, description="With init_project: register this API key for it if missing."
    )
    alerts_file: Path | None = Field(
        None, description="YAML file of alert rules, notification channels and drift jobs."
    )
    monitor_interval_s: float = Field(
        30.0, ge=0, description="Seconds between monitor ticks (alert evaluation); 0 turns it off."
    )
    budgets_file: Path | None = Field(
        None, description="YAML file of budgets (budgets: [{name, scope, limit_usd, ...}])."
    )
    budget_interval_s: float = Field(
        30.0, ge=0, description="Seconds between budget threshold checks; 0 turns them off."
    )
    default_alert_rules: bool = Field(
        True, description="Load the shipped default rule pack into every project."
    )
    notify_allow_private: bool = Field(
        False, description="Let notifiers send to private, loopback and link-local addresses."
    )
    public_url: str | None = Field(
        None, description="Base URL of this server in alert links (default http://HOST:PORT)."
    )
    drift_interval_s: float = Field(
        600.0, ge=0, description="Seconds between drift detection runs; 0 turns them off."
    )
    max_spans_per_request: int = Field(
        100_000, ge=1, description="Most spans one ingest request may carry (413 above)."
    )
    max_attributes: int = Field(
        512, ge=1, description="Attributes kept per span; the rest are dropped with a note."
    )
    max_events: int = Field(256, ge=0, description="Events kept per span.")
    max_value_depth: int = Field(
        32,
        ge=1,
        description="Deepest nesting of attribute, message and document values; deeper parts "
        "are replaced by <TOO_DEEP>.",
    )
    redaction: str = Field(
        "default",
        description="Redaction policy of projects that set none: 'default' (mask emails, "
        "phones, cards, IBANs, national ids, IPs and secrets), 'off', or a JSON policy "
        '({"types": {...}, "fields": {...}}).',
    )
    redaction_secret: str | None = Field(
        None,
        description="HMAC key of the 'hash' redaction action; default: a random key kept in "
        "DATA_DIR/redaction.key.",
    )
    retention_days: int = Field(
        0, ge=0, description="Days spans and scores are kept in projects that set none; 0 = ever."
    )
    retention_interval_s: float = Field(
        3600.0, ge=0, description="Seconds between retention purges; 0 turns them off."
    )
    auth_fail_limit: int = Field(
        20,
        ge=1,
        description="Failed authentications from one client address within "
        "auth_fail_window_s before it gets 429.",
    )
    auth_fail_window_s: float = Field(
        60.0, gt=0, description="Window of auth_fail_limit, and how long the 429 lasts."
    )
    key_touch_interval_s: float = Field(
        30.0, gt=0, description="Seconds between writes of API keys' last-used times."
    )
    key_cache_ttl_s: float = Field(
        10.0,
        ge=0,
        description=(
            "Seconds a process trusts an API key it looked up before asking the store again:"
            " the longest a key revoked through another process (node, role) still works here."
        ),
    )
    log_level: str = Field("info", description="debug, info, warning, error or critical.")
    log_format: str = Field("json", description="json (machines) or console (people).")

    eval_enabled: bool = Field(
        True, description="Run the online evaluation runner in `sightline serve`."
    )
    eval_process: bool = Field(
        True,
        description="Run the online evaluators in a niced child process (false: in a thread of "
        "the server, where their Python work competes with ingestion for the GIL).",
    )
    eval_timeout_s: float = Field(
        600.0,
        ge=0.0,
        description="Longest one evaluator may take on one batch in the evaluator process "
        "(`eval_process`): past it the process is stopped (and restarted for the next batch), "
        "and that evaluator's scores of the batch are stored as failed, so one stuck evaluator "
        "(a catastrophic regex, a huge text, a judge that never answers) does not stop online "
        "evaluation. 0: no limit.",
    )
    evaluators: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Comma-separated evaluators to run online; default: every registered one "
        "but llm_judge and format (they need options) and reference_similarity (it needs a "
        "reference answer), plus the ones in eval_options.",
    )
    eval_sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of spans each evaluator scores online."
    )
    eval_sample_rates: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="Per-evaluator sample rates, e.g. `relevance=0.5,llm_judge=0.05` (or JSON).",
    )
    eval_interval_s: float = Field(
        1.0, gt=0.0, description="Pause of the evaluation runner when it has caught up."
    )
    eval_grace_s: float = Field(
        2.0,
        ge=0.0,
        description="Seconds a commit waits before evaluation, so the rest of its trace arrives.",
    )
    eval_batch_size: int = Field(
        64, ge=1, description="Spans evaluated together online (a stop waits for one batch)."
    )
    eval_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["llm"],
        description="Span kinds evaluated online (comma-separated).",
    )
    eval_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='JSON: options per evaluator, e.g. {"llm_judge": {"base_url": ..., '
        '"model": ...}, "format": {"schema": {...}}}; naming one turns it on.',
    )
    eval_judge_api_key: SecretStr | None = Field(
        None, description="API key the llm_judge evaluator sends, unless eval_options sets one."
    )
    role: str = Field(
        "all",
        pattern="^(all|ingest|api|worker|monitor)$",
        description="What this process runs: all, or one of ingest, api, worker, monitor over "
        "a shared store (docs/scale-out.md).",
    )
    eval_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Evaluation workers in this process, each with its own evaluator process; "
        "more than one share the work through claims (docs/scale-out.md).",
    )
    eval_max_lag_s: float = Field(
        600.0,
        ge=0.0,
        description="Load shedding: while the oldest span not yet evaluated has waited longer "
        "than this, only errors, thumbs-down and guardrail hits are evaluated (the rest are "
        "skipped and counted), so the evaluators' backlog stops growing; 0: never skip.",
    )
    eval_yield_s: float = Field(
        5.0,
        ge=0.0,
        le=600.0,
        description="While ingestion has as many requests in as decode workers for less than "
        "this long (a burst of traffic), the online evaluation waits before its next batch, so "
        "ingestion gets the CPU first; a longer stretch is steady load, and evaluation runs "
        "alongside it. 0: never wait.",
    )
    eval_lease_s: float = Field(
        60.0,
        gt=0.0,
        description="Seconds an evaluation worker's claim lasts without renewal; a dead "
        "worker's range is taken over after this.",
    )
    leader_lease_s: float = Field(
        15.0,
        gt=0.0,
        description="Seconds the monitor's leader lease lasts without renewal; another monitor "
        "takes over after this.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://HOST:PORT/DB that coordinates evaluation workers and elects the "
        "monitor across processes; default: the store.",
    )
    redis_prefix: str = Field(
        "sightline:coord:", description="Prefix of the coordination keys in Redis."
    )
    gateway_upstream: str | None = Field(
        None,
        description="Mount the OpenAI-compatible gateway at /gateway, forwarding to this base"
        " URL (with its /v1, e.g. https://api.openai.com/v1); none: not mounted.",
    )
    gateway_cache: Literal["off", "exact", "semantic"] = Field(
        "off",
        description="The mounted gateway's cache: repeated (exact) or similar (semantic,"
        " needs sightline[ml]) requests answered from it.",
    )
    gateway_cache_ttl_s: int = Field(
        3600, ge=1, description="Seconds a cached answer of the mounted gateway stays."
    )
    gateway_semantic_threshold: float = Field(
        0.92,
        ge=-1,
        le=1,
        description="Least cosine similarity of two questions for a semantic cache hit.",
    )
    gateway_rate_limit: str | None = Field(
        None,
        description="The mounted gateway's requests per Sightline key: N/s, N/min or N/h; none:"
        " no limit.",
    )
    gateway_routes: Path | None = Field(
        None,
        description="YAML routes file of the mounted gateway: fallback upstreams per model,"
        " retry budget, circuit breakers (docs/gateway.md).",
    )
    gateway_redis_url: str | None = Field(
        None,
        description="redis://HOST:PORT/DB shared by the mounted gateways of several server"
        " nodes (cache, rate limits, stats); none: redis_url if set, else kept in this process.",
    )
    gateway_redis_prefix: str = Field(
        "sightline:gw:", description="Prefix of the mounted gateway's Redis keys."
    )
    gateway_upstream_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Seconds the mounted gateway waits for an upstream's whole answer (504 past"
        " it); a routes file's timeout_s sets it per upstream.",
    )
    gateway_max_response_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="Most bytes the mounted gateway reads of one upstream answer, a stream's as"
        " a whole (502 upstream_response_too_large past it).",
    )
    init_admin_email: str | None = Field(
        None, description="First run: create this dashboard admin (with init_admin_password)."
    )
    init_admin_password: SecretStr | None = Field(
        None, description="First run: the password of init_admin_email (12+ characters)."
    )
    session_days: float = Field(
        7.0, gt=0, description="Days a dashboard login lasts before logging in again."
    )

    @model_validator(mode="after")
    def _body_buffer(self) -> Settings:
        if self.max_buffered_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_buffered_body_bytes ({self.max_buffered_body_bytes}) is below"
                f" max_body_bytes ({self.max_body_bytes}): no body of the largest size could be"
                " received"
            )
        return self

    @model_validator(mode="after")
    def _conflicts(self) -> Settings:
        # each of these used to be accepted, and then failed late or did nothing
        if self.port and self.port == self.otlp_grpc_port:
            raise ValueError(
                f"port and otlp_grpc_port are both {self.port}: the HTTP and gRPC receivers"
                " need a port each"
            )
        if self.init_api_key and not self.init_project:
            raise ValueError(
                "init_api_key is set without init_project: the key would not be registered"
            )
        if self.init_admin_password is not None and not self.init_admin_email:
            raise ValueError(
                "init_admin_password is set without init_admin_email: no admin would be created"
            )
        return self

    @field_validator("log_level", "log_format")
    @classmethod
    def _log_choice(cls, v: str, info: ValidationInfo) -> str:
        # an unknown value used to fall back to info / console without a word
        choices = _LOG_CHOICES[info.field_name or ""]
        low = v.strip().lower()
        if low not in choices:
            raise ValueError(f"{v!r}: expected one of {', '.join(choices)}")
        return low

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_limit(cls, v: str) -> str:
        return check_memory_limit(v)

    @field_validator("gateway_upstream")
    @classmethod
    def _gateway_url(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("gateway_upstream: expected an http(s) URL")
        return v

    @field_validator("gateway_rate_limit")
    @classmethod
    def _gateway_rate(cls, v: str | None) -> str | None:
        from sightline.gateway._app import parse_rate

        if v is not None and not v.strip():
            return None
        parse_rate(v)  # ValueError: expected N/s, N/min or N/h
        return v

    @field_validator("gateway_redis_url")
    @classmethod
    def _gateway_redis(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("gateway_redis_url: expected redis://HOST:PORT/DB")
        return v

    @field_validator("evaluators", "eval_kinds", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("eval_sample_rates", mode="before")
    @classmethod
    def _split_rates(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("{"):
                return json.loads(v)
            out: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in v.split(","))):
                name, sep, rate = part.partition("=")
                if not sep:
                    raise ValueError(f"expected name=rate, got {part!r}")
                out[name.strip()] = rate.strip()
            return out
        return v

    @field_validator("eval_sample_rates")
    @classmethod
    def _rates_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for name, rate in v.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"sample rate of {name} must be in [0, 1]")
        return v

    @property
    def db_path(self) -> Path:
        """The DuckDB file."""
        return self.data_dir / "sightline.duckdb"

    @property
    def store_url(self) -> str:
        """Where the store is: ``store`` if set, else the DuckDB file in ``data_dir``."""
        return self.store or f"duckdb://{self.db_path.resolve()}"


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)\s*", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
MIN_DUCKDB_MEMORY = 64 * 2**20
"""Below this the store cannot hold its migrations' indexes and a batch in flight."""


def check_memory_limit(value: str) -> str:
    """``value`` as DuckDB's ``memory_limit`` takes it (``1GB``, ``512MiB``, ``25%``).

    Raises:
        ValueError: not a size or a percentage, or below 64 MiB, or a share outside (0, 100].
    """
    m = _SIZE.fullmatch(value)
    if m is None:
        raise ValueError(
            f"{value!r} is not a size: use a number and a unit (KB, MB, GB, TB, KiB, MiB, GiB,"
            " TiB) such as 1GB, or a share of RAM such as 25%"
        )
    num, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%":
        if not 0 < num <= 100:
            raise ValueError(f"{value!r}: a share of RAM must be in (0, 100]%")
        return f"{m.group(1)}%"
    if num * _UNITS[unit] < MIN_DUCKDB_MEMORY:
        raise ValueError(f"{value!r} is below the 64MiB the DuckDB store needs")
    return f"{m.group(1)}{m.group(2)}"


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME (files keep secrets out).

    Raises:
        ConfigError: NAME is not set.
    """
    from sightline.errors import ConfigError

    def sub(m: re.Match[str]) -> str:
        v = os.environ.get(m.group(1))
        if v is None:
            raise ConfigError(f"environment variable {m.group(1)} is not set")
        return v

    return _ENV_REF.sub(sub, text)
