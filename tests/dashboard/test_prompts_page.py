"""The Prompts page reads the spans without a prompt registry, and lists the registry's prompts
when the store has one (``list_prompts``, added by the prompt-registry stage)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from sightline.config import Settings
from sightline.server import create_app
from sightline.store import DuckDBStore


@dataclasses.dataclass
class _Summary:
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "prompt", "latest_version": 3, "num_versions": 3,
                "labels": {"prod": 2}, "updated_at": datetime.now(UTC).isoformat()}  # fmt: skip


class _RegistryStore(DuckDBStore):
    """A real DuckDB store with a registry's read method, as the registry stage adds it."""

    def list_prompts(self, project_id: str, kind: str | None) -> list[_Summary]:
        return [_Summary(f"<b>{project_id}-answer</b>")]


def _prompts_page(tmp: Path, store: DuckDBStore | None) -> str:
    s = Settings(data_dir=tmp, otlp_grpc_port=0, ingest_workers=0, init_project="p1",
                 init_admin_email="a@example.com", init_admin_password="correct horse battery",
                 eval_enabled=False, monitor_interval_s=0, drift_interval_s=0)  # fmt: skip
    with TestClient(create_app(s, store=store), follow_redirects=False) as c:
        form = c.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"email": "a@example.com", "password": "correct horse battery",
                                   "csrf": csrf})  # fmt: skip
        assert r.status_code == 303
        page = c.get("/prompts")
        assert page.status_code == 200
        return page.text


def test_without_a_registry_the_page_reads_the_spans(tmp_path: Path) -> None:
    html = _prompts_page(tmp_path, None)
    assert "No prompt registry on this server" in html and 'id="registry"' not in html


def test_with_a_registry_the_page_lists_its_prompts_escaped(tmp_path: Path) -> None:
    html = _prompts_page(tmp_path, _RegistryStore(tmp_path / "s.duckdb"))
    assert 'id="registry"' in html
    assert "&lt;b&gt;p1-answer&lt;/b&gt;" in html and "<b>p1-answer" not in html
    assert "prod → v2" in html
