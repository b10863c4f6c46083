"""Replay: run a recorded LLM span again through the gateway, with another model, side by side."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from sightline.errors import ConfigError, NotFound

__all__ = ["ReplayResult", "Run", "format_side_by_side", "replay_span"]


@dataclass(frozen=True, slots=True)
class Run:
    """One side: the recorded call, or its replay."""

    trace_id: str
    span_id: str | None
    model: str | None
    output: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    duration_ms: float | None
    scores: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The recorded call and its replay."""

    original: Run
    replay: Run


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.get("children") or []))
    return out


def _messages(span: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = span.get("input_messages")
    if isinstance(msgs, list) and msgs:
        return [
            {"role": m.get("role", "user"), "content": m.get("content") or ""}
            for m in msgs
            if isinstance(m, dict)
        ]
    if isinstance(span.get("input"), str) and span["input"]:
        return [{"role": "user", "content": span["input"]}]
    raise ConfigError(f"span {span['span_id']} recorded no input to replay")


def _run_of(span: dict[str, Any]) -> Run:
    return Run(
        trace_id=span["trace_id"],
        span_id=span["span_id"],
        model=span.get("model"),
        output=span.get("output") or "",
        input_tokens=span.get("input_tokens"),
        output_tokens=span.get("output_tokens"),
        cost_usd=span.get("cost_usd"),
        duration_ms=span.get("duration_ms"),
        scores=list(span.get("scores") or []),
    )


def replay_span(
    *,
    server: str,
    api_key: str,
    gateway: str,
    trace_id: str,
    span_id: str | None = None,
    model: str | None = None,
    provider_key: str = "",
    wait_scores_s: float = 0.0,
) -> ReplayResult:
    """Send a recorded LLM span's messages through the gateway again (with ``model`` if given).

    The replay is recorded like any gateway call, tagged with the original's user, session,
    feature and prompt, and ``sightline.replay_of`` = the original span id; its scores appear
    once the evaluation runner scored it (``wait_scores_s`` waits for them).

    Raises:
        NotFound: no such trace, or no LLM span in it (or not ``span_id``).
        ConfigError: the span recorded no input, or the gateway refused the call.
    """
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as c:
        r = c.get(f"/api/v1/traces/{trace_id}")
        if r.status_code == 404:
            raise NotFound(f"trace {trace_id} not found")
        r.raise_for_status()
        spans = [s for s in _walk(r.json()["spans"]) if s.get("kind") == "llm"]
        if span_id is not None:
            spans = [s for s in spans if s["span_id"] == span_id]
        if not spans:
            raise NotFound(f"no LLM span {span_id or ''} in trace {trace_id}".replace("  ", " "))
        span = spans[0]
        original = _run_of(span)
        body: dict[str, Any] = {"model": model or span.get("model"), "messages": _messages(span)}
        for k in ("temperature", "top_p", "max_tokens", "seed"):
            if span.get(k) is not None:
                body[k] = span[k]
        gw_headers = {"x-sightline-api-key": api_key, "x-sightline-replay-of": span["span_id"]}
        if provider_key:
            gw_headers["authorization"] = f"Bearer {provider_key}"
        for h, f in (("user", "user_id"), ("session", "session_id"), ("tenant", "tenant_id"),
                     ("feature", "feature")):  # fmt: skip
            if span.get(f):
                gw_headers[f"x-sightline-{h}"] = str(span[f])
        if span.get("prompt_name"):
            gw_headers["x-sightline-prompt"] = str(span["prompt_name"])
        t0 = time.perf_counter()
        g = httpx.post(gateway.rstrip("/") + "/v1/chat/completions", json=body,
                       headers=gw_headers, timeout=600)  # fmt: skip
        duration_ms = (time.perf_counter() - t0) * 1000
        if g.status_code != 200:
            raise ConfigError(f"the gateway answered {g.status_code}: {g.text[:300]}")
        data = g.json()
        new_trace = g.headers.get("x-sightline-trace-id", "")
        usage = data.get("usage") or {}
        replay = Run(
            trace_id=new_trace,
            span_id=None,
            model=data.get("model"),
            output=((data.get("choices") or [{}])[0].get("message") or {}).get("content") or "",
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            cost_usd=None,
            duration_ms=duration_ms,
        )
        # the gateway sends its spans in batches: wait for the replay's, and for its scores
        deadline = time.monotonic() + 10.0 + wait_scores_s
        while new_trace and time.monotonic() < deadline:
            t = c.get(f"/api/v1/traces/{new_trace}")
            found = (
                [s for s in _walk(t.json()["spans"]) if s.get("kind") == "llm"]
                if t.status_code == 200
                else []
            )
            if found:
                got = _run_of(found[0])
                replay = Run(**{**_asdict(got), "duration_ms": duration_ms})
                if got.scores or wait_scores_s == 0:
                    break
            time.sleep(0.2)
    return ReplayResult(original, replay)


def _asdict(r: Run) -> dict[str, Any]:
    return {f: getattr(r, f) for f in r.__slots__}


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def format_side_by_side(res: ReplayResult, *, width: int = 48) -> str:
    """The two runs as a text table: model, tokens, cost, latency, scores, then both outputs."""
    o, r = res.original, res.replay
    rows = [
        ("", "original", "replay"),
        ("trace", o.trace_id, r.trace_id),
        ("model", _fmt(o.model), _fmt(r.model)),
        ("tokens in/out", f"{_fmt(o.input_tokens)}/{_fmt(o.output_tokens)}",
         f"{_fmt(r.input_tokens)}/{_fmt(r.output_tokens)}"),
        ("cost_usd", _fmt(o.cost_usd, ".6f"), _fmt(r.cost_usd, ".6f")),
        ("latency_ms", _fmt(o.duration_ms, ".1f"), _fmt(r.duration_ms, ".1f")),
    ]  # fmt: skip
    names = sorted({s["name"] for s in o.scores} | {s["name"] for s in r.scores})
    for n in names:
        ov = [s.get("value") for s in o.scores if s["name"] == n]
        rv = [s.get("value") for s in r.scores if s["name"] == n]
        rows.append((f"score {n}", _fmt(ov[0] if ov else None), _fmt(rv[0] if rv else None)))
    out = [f"{a:<16} {b:<{width}} {c}" for a, b, c in rows]
    out.append("")
    left, right = _wrap(o.output, width), _wrap(r.output, width)
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        out.append(f"{'output' if i == 0 else '':<16} {a:<{width}} {b}")
    return "\n".join(out)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
