"""The PII corpus through OTLP into a real server; then the DuckDB file is read directly.

Every case's text goes into one part of a span (input, output, messages, documents, an
attribute, a resource attribute, the status message). After the server stops, every column of
every table is searched for every raw value: only the values the redactor itself misses in
process (its measured recall misses) may be found, nowhere else.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import duckdb

from _helpers import API_KEY, start_server
from sightline.redact import RedactionPolicy, Redactor

CORPUS = Path(__file__).parent.parent / "redact" / "data" / "pii_corpus.jsonl"
POLICY = {"types": {"person": "mask"}}


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(i: int, text: str) -> dict[str, Any]:
    where = i % 6
    attrs = [_attr("gen_ai.request.model", "gpt-4o-mini"), _attr("gen_ai.operation.name", "chat")]
    status: dict[str, Any] = {"code": 1}
    if where == 0:
        attrs.append(_attr("input.value", text))
    elif where == 1:
        attrs.append(_attr("output.value", text))
    elif where == 2:
        attrs.append(
            _attr(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]),
            )
        )
    elif where == 3:
        attrs.append(_attr("sightline.documents", json.dumps([{"id": "d", "content": text}])))
    elif where == 4:
        attrs.append(_attr("app.customer_note", text))
    else:
        status = {"code": 2, "message": text}
    return {"traceId": secrets.token_hex(16), "spanId": secrets.token_hex(8), "name": "chat",
            "startTimeUnixNano": "1772452800000000000", "endTimeUnixNano": "1772452801000000000",
            "attributes": attrs, "status": status}  # fmt: skip


def test_no_raw_value_reaches_the_file(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    spans = [_span(i, r["text"]) for i, r in enumerate(rows)]
    body = {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "support"),
                                    _attr("host.note", rows[0]["text"])]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}  # fmt: skip
    srv = start_server(tmp_path, env={"SIGHTLINE_REDACTION": json.dumps(POLICY)})
    try:
        with srv.client() as c:
            r = c.post("/v1/traces", json=body)
            assert r.status_code == 200, r.text
            got = c.get("/api/v1/spans", params={"limit": 1000}).json()["data"]
            assert len(got) == len(rows)
    finally:
        srv.stop()
    redactor = Redactor(RedactionPolicy.from_dict(POLICY))
    missed = {
        r["value"]
        for r in rows
        if r["value"] and r["value"] in (redactor.redact_text(r["text"], "input", {}) or "")
    }
    values = {r["value"] for r in rows if r["value"]}
    con = duckdb.connect(str(tmp_path / "data" / "sightline.duckdb"), read_only=True)
    found: dict[str, set[str]] = {}
    try:
        tables = [t[0] for t in con.execute("SELECT table_name FROM information_schema.tables"
                                            " WHERE table_schema = 'main'").fetchall()]  # fmt: skip
        assert "spans" in tables
        for t in tables:
            cols = [c[0] for c in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [t]
            ).fetchall()]  # fmt: skip
            for col in cols:
                for (v,) in con.execute(f'SELECT CAST("{col}" AS VARCHAR) FROM "{t}"').fetchall():  # noqa: S608
                    if v:
                        for raw in values:
                            if raw in v:
                                found.setdefault(raw, set()).add(f"{t}.{col}")
    finally:
        con.close()
    assert API_KEY not in str(found)
    assert set(found) == missed, {k: found[k] for k in set(found) - missed}
    assert len(missed) <= 2  # the corpus misses docs/security.md reports
