"""Failover: ordered upstreams per route, per-attempt timeouts, a retry budget, circuit breakers.

A route matches the requested model (a glob, ``gpt-4o*``) and lists its upstreams in order; a
call tries them in turn while an attempt fails (5xx, 429, a timeout, a refused connection),
skipping upstreams whose circuit is open. Extra attempts (after a failed one) are allowed
only while the retry budget has room: at most ``retry_ratio`` extra attempts per call over the
last ``retry_window_s`` seconds, plus ``retry_min`` per window, so a dead provider does not
double the load on the others. The state is per gateway process (not shared through Redis).
"""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["Breaker", "FailoverConfig", "RetryBudget", "Route", "Upstream", "load_routes"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One place a route can send a call: a base URL, the model to ask it for, a timeout."""

    url: str
    model: str | None = None
    """The model sent upstream (None: the caller's)."""
    timeout_s: float = 600.0
    """The most one attempt may take (to the whole response, or to the first streamed chunk)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Requests whose model matches ``model`` (a glob) go to ``upstreams``, in order."""

    model: str
    upstreams: tuple[Upstream, ...]

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model)


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    """The ``--routes`` file: routes, the retry budget and the circuit breakers."""

    routes: tuple[Route, ...] = ()
    retry_ratio: float = 0.2
    retry_min: int = 3
    retry_window_s: float = 60.0
    circuit_failures: int = 5
    """Consecutive failures (5xx, timeouts, unreachable) that open an upstream's circuit."""
    circuit_cooldown_s: float = 30.0
    """How long a circuit stays open before letting one probe through (half-open)."""

    def route_for(self, model: str) -> Route | None:
        for r in self.routes:
            if r.matches(model):
                return r
        return None


def _num(d: dict[str, Any], key: str, default: float, lo: float, where: str) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or v < lo:
        raise ValueError(f"{where}{key}: expected a number >= {lo:g}, got {v!r}")
    return float(v)


def parse_routes(data: Any) -> FailoverConfig:
    """A :class:`FailoverConfig` from the parsed YAML; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("expected a mapping with a 'routes:' list")
    unknown = set(data) - {"routes", "retry_budget", "circuit"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    raw = data.get("routes")
    if not isinstance(raw, list) or not raw:
        raise ValueError("routes: expected a non-empty list")
    routes = []
    for i, r in enumerate(raw):
        where = f"routes[{i}]."
        if not isinstance(r, dict) or not isinstance(r.get("model"), str) or not r["model"]:
            raise ValueError(f"{where}model: expected a model name or glob")
        ups = r.get("upstreams")
        if not isinstance(ups, list) or not ups:
            raise ValueError(f"{where}upstreams: expected a non-empty list")
        out = []
        for j, u in enumerate(ups):
            w = f"{where}upstreams[{j}]."
            if isinstance(u, str):
                u = {"url": u}
            if not isinstance(u, dict):
                raise ValueError(f"{w[:-1]}: expected a mapping with url, model, timeout_s")
            url = u.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"{w}url: expected an http(s) URL")
            model = u.get("model")
            if model is not None and (not isinstance(model, str) or not model):
                raise ValueError(f"{w}model: expected a model name")
            t = _num(u, "timeout_s", 600.0, 0.001, w)
            out.append(Upstream(url.rstrip("/"), model, t))
        routes.append(Route(r["model"], tuple(out)))
    rb = data.get("retry_budget") or {}
    cb = data.get("circuit") or {}
    if not isinstance(rb, dict) or not isinstance(cb, dict):
        raise ValueError("retry_budget and circuit: expected mappings")
    return FailoverConfig(
        routes=tuple(routes),
        retry_ratio=_num(rb, "ratio", 0.2, 0, "retry_budget."),
        retry_min=int(_num(rb, "min_per_window", 3, 0, "retry_budget.")),
        retry_window_s=_num(rb, "window_s", 60.0, 0.001, "retry_budget."),
        circuit_failures=int(_num(cb, "failures", 5, 1, "circuit.")),
        circuit_cooldown_s=_num(cb, "cooldown_s", 30.0, 0, "circuit."),
    )


def load_routes(path: str | Path) -> FailoverConfig:
    """Read a routes file (see docs/gateway.md, Failover); ValueError says what is wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(str(e)) from None
    return parse_routes(data)


@dataclass
class Breaker:
    """An upstream's circuit: closed, open after ``failures`` in a row, half-open after cooldown.

    Half-open lets one probe through; its success closes the circuit, its failure opens it
    again for another cooldown.
    """

    failures: int
    cooldown_s: float
    state: State = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    opened_count: int = 0

    def current(self, now: float | None = None) -> State:
        now = time.monotonic() if now is None else now
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self.state = "half_open"
            self.probing = False
        return self.state

    def allow(self) -> bool:
        """Whether an attempt may go to this upstream now (takes the half-open probe)."""
        s = self.current()
        if s == "closed":
            return True
        if s == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.state, self.consecutive, self.probing = "closed", 0, False

    def failure(self) -> None:
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            if self.state != "open":
                self.opened_count += 1
            self.state, self.opened_at, self.probing = "open", time.monotonic(), False

    def release(self) -> None:
        """An attempt that neither succeeded nor failed (e.g. a 4xx): free the probe."""
        self.probing = False


@dataclass
class RetryBudget:
    """At most ``ratio`` extra attempts per call, plus ``min_per_window``, over a window.

    Counts calls and retries in buckets of a tenth of the window (so memory stays bounded):
    the window slides by that step.
    """

    ratio: float
    min_per_window: int
    window_s: float
    _buckets: deque[list[float]] = field(default_factory=deque)
    """[bucket start, calls, retries], oldest first."""
    _calls: float = 0.0
    _retries: float = 0.0

    def _now_bucket(self) -> list[float]:
        now = time.monotonic()
        step = self.window_s / 10
        b = self._buckets
        while b and now - b[0][0] > self.window_s:
            _, c, r = b.popleft()
            self._calls -= c
            self._retries -= r
        if not b or now - b[-1][0] >= step:
            b.append([now, 0.0, 0.0])
        return b[-1]

    def call(self) -> None:
        self._now_bucket()[1] += 1
        self._calls += 1

    def try_retry(self) -> bool:
        """Spend one extra attempt if the budget has room."""
        bucket = self._now_bucket()
        if self._retries >= self.min_per_window + self.ratio * self._calls:
            return False
        bucket[2] += 1
        self._retries += 1
        return True
