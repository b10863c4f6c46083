"""The Prompts page lists the prompt registry's prompts (escaped), beside the versions the spans
carry."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from sightline.config import Settings
from sightline.model import PromptVersion
from sightline.server import create_app
from sightline.store import DuckDBStore

_KEY = "sl_prompts_page_key_0123456789"


def _prompts_page(
    tmp: Path, store: DuckDBStore | None, spans: Sequence[dict[str, Any]] = ()
) -> str:
    s = Settings(data_dir=tmp, otlp_grpc_port=0, ingest_workers=0, init_project="p1",
                 init_api_key=_KEY,
                 init_admin_email="a@example.com", init_admin_password="correct horse battery",
                 eval_enabled=False, monitor_interval_s=0, drift_interval_s=0)  # fmt: skip
    with TestClient(create_app(s, store=store), follow_redirects=False) as c:
        if spans:
            r = c.post("/api/v1/spans", json=spans, headers={"authorization": f"Bearer {_KEY}"})
            assert r.status_code == 200 and r.json()["accepted"] == len(spans), r.text
        form = c.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"email": "a@example.com", "password": "correct horse battery",
                                   "csrf": csrf})  # fmt: skip
        assert r.status_code == 303
        page = c.get("/prompts")
        assert page.status_code == 200
        return page.text


def test_without_registered_prompts_the_page_reads_the_spans(tmp_path: Path) -> None:
    html = _prompts_page(tmp_path, None)
    assert 'id="registry"' in html and "No prompt registered yet" in html


def test_the_page_lists_the_registry_prompts_escaped(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.migrate()
    now = datetime.now(UTC)
    for v in (1, 2, 3):
        pv = PromptVersion(project_id="p1", name="<b>p1-answer</b>", version=0, kind="prompt",
                           type="text", template=f"v{v} {{{{q}}}}", created_at=now)  # fmt: skip
        store.add_prompt_version(pv, labels=["prod"] if v == 2 else [], updated_by=None)
    html = _prompts_page(tmp_path, store)
    assert 'id="registry"' in html and "No prompt registered yet" not in html
    assert "&lt;b&gt;p1-answer&lt;/b&gt;" in html and "<b>p1-answer" not in html
    assert "prod → v2" in html


def test_a_prompt_without_a_version_is_shown_versionless(tmp_path: Path) -> None:
    """Spans naming a prompt but no version: one row with a dash, beside the versioned ones
    (the version read "None", as if a version had that name)."""
    now = datetime.now(UTC).isoformat()

    def span(version: str | None) -> dict[str, Any]:
        return {"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8),
                "name": "chat", "kind": "llm", "model": "m", "start_time": now,
                "duration_ms": 5, "prompt_name": "greet",
                **({"prompt_version": version} if version else {})}  # fmt: skip

    html = _prompts_page(tmp_path, None, [span(None), span(None), span("2")])
    rows = re.findall(r"<tr><td>greet</td><td>([^<]*)</td><td>([^<]*)</td>", html)
    assert rows == [("–", "2"), ("2", "1")], rows
