"""An in-process app with two projects (alpha, beta), each with keys of every role and data."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from sightline._clock import FakeClock
from sightline.config import Settings
from sightline.server import create_app
from sightline.server._auth import create_project_with_key, hash_key
from sightline.store.base import ApiKey

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KEYS = {
    "alpha": {r: f"sl_alpha_{r}_key_0123456789abcdef" for r in ("admin", "read", "ingest")},
    "beta": {r: f"sl_beta_{r}_key_0123456789abcdef" for r in ("admin", "read", "ingest")},
}
RULE = {"name": "slow", "metric": "latency_ms", "threshold": 2000, "window": "5m"}


@dataclass
class Project:
    """What was seeded in one project: ids a leak would show."""

    name: str
    trace_ids: list[str] = field(default_factory=list)
    span_ids: list[str] = field(default_factory=list)
    user_id: str = ""
    marker: str = ""
    rule: str = ""
    silence_id: str = ""
    key_ids: dict[str, str] = field(default_factory=dict)


@dataclass
class TwoProjects:
    client: TestClient
    clock: FakeClock
    app: Any
    projects: dict[str, Project]

    def api(self, method: str, path: str, *, project: str = "alpha", role: str = "admin",
            **kw: Any) -> httpx.Response:  # fmt: skip
        headers = {"authorization": f"Bearer {KEYS[project][role]}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    @property
    def store(self) -> Any:
        return self.app.state.sightline.store


def spans_for(
    project: str, n: int, *, user: str, marker: str, start: datetime
) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append({
            "trace_id": secrets.token_hex(16),
            "span_id": secrets.token_hex(8),
            "name": "chat",
            "kind": "llm",
            "model": f"model-{project}",
            "user_id": user,
            "start_time": (start + timedelta(seconds=i)).isoformat(),
            "duration_ms": 100 + i,
            "input_tokens": 10,
            "output_tokens": 5,
            "input": f"{marker} question {i}",
            "output": f"{marker} answer {i}",
        })  # fmt: skip
    return out


def seed(h: TwoProjects, name: str) -> Project:
    p = Project(name, user_id=f"user-{name}", marker=f"MARK{name.upper()}")
    spans = spans_for(
        name, 3, user=p.user_id, marker=p.marker, start=h.clock() - timedelta(minutes=2)
    )
    r = h.api("POST", "/api/v1/spans", project=name, json=spans)
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    p.trace_ids = [s["trace_id"] for s in spans]
    p.span_ids = [s["span_id"] for s in spans]
    r = h.api("POST", "/api/v1/feedback", project=name,
              json={"trace_id": p.trace_ids[0], "score": 1, "user_id": p.user_id,
                    "comment": f"{p.marker} thanks"})  # fmt: skip
    assert r.status_code == 201, r.text
    p.rule = f"rule-{name}"
    r = h.api("POST", "/api/v1/alerts/rules", project=name, json={**RULE, "name": p.rule})
    assert r.status_code == 201, r.text
    r = h.api("POST", "/api/v1/alerts/silences", project=name,
              json={"matchers": {"rule": p.rule}, "duration": "1h"})  # fmt: skip
    assert r.status_code == 201, r.text
    p.silence_id = r.json()["silence_id"]
    p.key_ids = {role: hash_key(k)[:16] for role, k in KEYS[name].items()}
    return p


def two_projects(tmp: Path, **settings: Any) -> Iterator[TwoProjects]:
    s = Settings(
        data_dir=tmp / "data",
        otlp_grpc_port=0,
        ingest_workers=0,
        init_project="alpha",
        init_api_key=KEYS["alpha"]["admin"],
        monitor_interval_s=0,
        drift_interval_s=0,
        retention_interval_s=0,
        default_alert_rules=False,
        # scores appear in the background when the runner is on: these tests count rows
        eval_enabled=False,
        **settings,
    )
    clock = FakeClock(T0)
    app = create_app(s, clock=clock)
    with TestClient(app) as client:
        store = app.state.sightline.store
        create_project_with_key(store, "beta", key=KEYS["beta"]["admin"])
        for project, keys in KEYS.items():
            for role in ("read", "ingest"):
                store.add_api_key(ApiKey(hash_key(keys[role]), keys[role][:10], project, role, T0))
        h = TwoProjects(client, clock, app, {})
        h.projects = {n: seed(h, n) for n in ("alpha", "beta")}
        yield h
