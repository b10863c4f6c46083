"""GDPR erasure end to end: the API forgets a user at once, `sightline compact` removes the
bytes from the file, and the server starts again on the compacted store."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from _helpers import Server, free_port, start_server


def _spans(user: str, text: str, n: int) -> list[dict[str, object]]:
    return [{"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "name": "chat",
             "kind": "llm", "user_id": user, "start_time": 1772452800 + i, "duration_ms": 5,
             "input": f"{text} {i}"} for i in range(n)]  # fmt: skip


def test_erase_then_compact_leaves_no_bytes(tmp_path: Path) -> None:
    srv = start_server(tmp_path, grpc_port=0)
    victim = "VICTIMSECRETPHRASE"
    try:
        with srv.client() as c:
            assert c.post("/api/v1/spans", json=_spans("victim", victim, 3)).status_code == 200
            assert c.post("/api/v1/spans", json=_spans("other", "keep me", 50)).status_code == 200
            r = c.delete("/api/v1/users/victim/data")
            assert r.status_code == 200 and r.json()["deleted_spans"] == 3
            assert c.get("/api/v1/spans", params={"user_id": "victim"}).json()["data"] == []
            assert c.get("/api/v1/spans", params={"q": victim.lower()}).json()["data"] == []
            audit = c.get("/api/v1/audit").json()["data"]
            assert audit[0]["action"] == "user.erase" and "victim" not in str(audit[0])
    finally:
        srv.stop()
    db = srv.data_dir / "sightline.duckdb"
    out = subprocess.run(
        [sys.executable, "-m", "sightline", "compact", "--data-dir", str(srv.data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "compacted" in out.stdout
    assert victim.encode() not in db.read_bytes()
    assert b"keep me" in db.read_bytes()
    again = Server(data_dir=srv.data_dir, port=free_port()).start()
    try:
        with again.client() as c:
            assert len(c.get("/api/v1/spans", params={"limit": 1000}).json()["data"]) == 50
    finally:
        again.stop()


def _log(body: str, user: str, *, resource: bool = False) -> dict[str, object]:
    """An OTLP/JSON log request of one record naming ``user`` (no trace of theirs)."""
    attr = [{"key": "enduser.id" if resource else "user.id", "value": {"stringValue": user}}]
    rec = {"timeUnixNano": str(1772452800 * 10**9), "body": {"stringValue": body},
           "attributes": [] if resource else attr}  # fmt: skip
    return {"resourceLogs": [{"resource": {"attributes": attr if resource else []},
                              "scopeLogs": [{"logRecords": [rec]}]}]}  # fmt: skip


def test_erase_takes_log_records_naming_the_user_and_other_users_keep_theirs(
    tmp_path: Path,
) -> None:
    """Logs sent over OTLP with the user's id but no trace of theirs are erased too."""
    srv = start_server(tmp_path, grpc_port=0)
    try:
        with srv.client() as c:
            assert c.post("/api/v1/spans", json=_spans("victim", "span text", 1)).status_code == 200
            for req in (_log("VICTIMLOG attr", "victim"),
                        _log("VICTIMLOG resource", "victim", resource=True),
                        _log("keep other", "other"), _log("keep near", "victim2")):  # fmt: skip
                assert c.post("/v1/logs", json=req).status_code == 200
            r = c.delete("/api/v1/users/victim/data")
            assert r.status_code == 200 and r.json()["deleted_spans"] == 1
            assert c.get("/api/v1/logs", params={"q": "VICTIMLOG"}).json()["data"] == []
            left = c.get("/api/v1/logs", params={"q": "keep"}).json()["data"]
            assert sorted(x["body"] for x in left) == ["keep near", "keep other"]
            # erasing again is fine and finds nothing
            r = c.delete("/api/v1/users/victim/data")
            assert r.status_code == 200 and r.json()["deleted_spans"] == 0
    finally:
        srv.stop()


def test_a_user_id_with_a_slash_can_be_erased(tmp_path: Path) -> None:
    """``org/alice`` is sent as ``org%2Falice``; the route used to answer 404 to it."""
    srv = start_server(tmp_path, grpc_port=0)
    try:
        with srv.client() as c:
            r = c.post("/api/v1/spans", json=_spans("org/alice", "alice's", 2))
            assert r.status_code == 200
            assert c.post("/api/v1/spans", json=_spans("org", "org's", 1)).status_code == 200
            r = c.delete("/api/v1/users/org%2Falice/data")
            assert r.status_code == 200, r.text
            assert r.json()["deleted_spans"] == 2
            left = c.get("/api/v1/spans", params={"limit": 100}).json()["data"]
            assert [s["user_id"] for s in left] == ["org"]
            assert c.delete("/api/v1/users//data").status_code // 100 == 4
    finally:
        srv.stop()


def test_compact_refuses_a_missing_store(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sightline", "compact", "--data-dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0 and "no store" in out.stderr
