"""Keys and roles, failed-auth limits, privacy settings, retention, erasure, audit, headers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.responses import HTMLResponse

from _two_projects import TwoProjects, spans_for, two_projects
from sightline.server._security import RetentionTask
from sightline.store.base import LogQuery


@pytest.fixture
def h(tmp_path: Path) -> Iterator[TwoProjects]:
    yield from two_projects(tmp_path, auth_fail_limit=5, auth_fail_window_s=60)


def _actions(h: TwoProjects, project: str = "alpha") -> list[str]:
    r = h.api("GET", "/api/v1/audit", project=project)
    assert r.status_code == 200, r.text
    return [e["action"] for e in r.json()["data"]]


class TestRoles:
    def test_ingest_key_only_sends_telemetry(self, h: TwoProjects) -> None:
        spans = spans_for("alpha", 1, user="u", marker="x", start=h.clock())
        assert h.api("POST", "/api/v1/spans", role="ingest", json=spans).status_code == 200
        r = h.api("POST", "/v1/traces", role="ingest", json={"resourceSpans": []},
                  headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text
        r = h.api("GET", "/api/v1/spans", role="ingest")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert h.api("POST", "/api/v1/alerts/rules", role="ingest",
                     json={**_rule("x")}).status_code == 403  # fmt: skip

    def test_read_key_only_reads(self, h: TwoProjects) -> None:
        r = h.api("GET", "/api/v1/spans", role="read")
        assert r.status_code == 200 and len(r.json()["data"]) == 3
        spans = spans_for("alpha", 1, user="u", marker="x", start=h.clock())
        assert h.api("POST", "/api/v1/spans", role="read", json=spans).status_code == 403
        assert h.api("DELETE", "/api/v1/alerts/rules/rule-alpha", role="read").status_code == 403
        assert h.api("GET", "/api/v1/keys", role="read").status_code == 403
        assert h.api("GET", "/api/v1/audit", role="read").status_code == 403

    def test_key_lifecycle_shown_once_revoked_at_once(self, h: TwoProjects) -> None:
        r = h.api("POST", "/api/v1/keys", json={"role": "read", "name": "grafana"})
        assert r.status_code == 201, r.text
        new = r.json()
        key, key_id = new["key"], new["key_id"]
        assert key.startswith("sl_") and new["prefix"] == key[:10]
        listed = h.api("GET", "/api/v1/keys").json()["data"]
        assert key not in str(listed)
        mine = next(k for k in listed if k["key_id"] == key_id)
        assert mine["role"] == "read" and mine["last_used_at"] is None
        auth = {"authorization": f"Bearer {key}"}
        assert h.client.get("/api/v1/spans", headers=auth).status_code == 200
        # last-used is written in batches, not per request
        h.app.state.sightline.keys.flush_last_used()
        mine = next(k for k in h.api("GET", "/api/v1/keys").json()["data"]
                    if k["key_id"] == key_id)  # fmt: skip
        assert mine["last_used_at"] is not None
        r = h.api("DELETE", f"/api/v1/keys/{key_id}")
        assert r.status_code == 200 and r.json()["revoked_at"]
        # the key was cached by its use above: revocation must still be immediate
        assert h.client.get("/api/v1/spans", headers=auth).status_code == 401
        assert h.api("DELETE", f"/api/v1/keys/{key_id}").status_code == 404
        assert _actions(h)[:2] == ["key.revoke", "key.create"]

    def test_last_admin_key_cannot_be_revoked(self, h: TwoProjects) -> None:
        admin_id = h.projects["alpha"].key_ids["admin"]
        r = h.api("DELETE", f"/api/v1/keys/{admin_id}")
        assert r.status_code == 409
        assert h.api("GET", "/api/v1/keys").status_code == 200

    @pytest.mark.parametrize("body", [{"role": "root"}, {"role": "read", "extra": 1}, {}])
    def test_bad_key_requests(self, h: TwoProjects, body: dict[str, object]) -> None:
        assert h.api("POST", "/api/v1/keys", json=body).status_code == 400


def _rule(name: str) -> dict[str, object]:
    return {"name": name, "metric": "latency_ms", "threshold": 1, "window": "5m"}


class TestFailedAuth:
    def test_429_with_retry_after_then_recovers(self, h: TwoProjects) -> None:
        for i in range(5):
            r = h.client.get("/api/v1/spans", headers={"authorization": f"Bearer wrong-{i}"})
            assert r.status_code == 401
        r = h.client.get("/api/v1/spans", headers={"authorization": "Bearer wrong-x"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # a valid key from the same address is refused too (no oracle for guessed keys)
        assert h.api("GET", "/api/v1/spans").status_code == 429
        assert h.client.get("/healthz").status_code == 200
        limiter = h.app.state.sightline.security.limiter
        limiter.window_s = 0.0  # the window has passed
        assert h.api("GET", "/api/v1/spans").status_code == 200

    def test_missing_key_is_401_and_not_counted(self, h: TwoProjects) -> None:
        for _ in range(8):
            assert h.client.get("/api/v1/spans").status_code == 401
        assert h.api("GET", "/api/v1/spans").status_code == 200


class TestPrivacyApi:
    def test_defaults_then_project_policy_applies_at_ingest(self, h: TwoProjects) -> None:
        r = h.api("GET", "/api/v1/projects/alpha/privacy")
        assert r.status_code == 200
        body = r.json()
        assert body["policy_source"] == "server_default" and body["retention_days"] == 0
        assert body["policy"]["types"]["email"] == "mask"
        r = h.api("PUT", "/api/v1/projects/alpha/privacy",
                  json={"policy": {"types": {"email": "hash"}, "fields": {"output": "off"}},
                        "retention_days": 30})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["policy_source"] == "project" and r.json()["retention_days"] == 30
        spans = spans_for("alpha", 2, user="u2", marker="mail ann.lee@example.com", start=h.clock())
        assert h.api("POST", "/api/v1/spans", json=spans).json()["accepted"] == 2
        got = h.api("GET", "/api/v1/spans", params={"user_id": "u2"}).json()["data"]
        tags = {s["input"].split()[1] for s in got}
        assert len(tags) == 1 and next(iter(tags)).startswith("<EMAIL:")
        assert all("ann.lee@example.com" in s["output"] for s in got)  # output: off
        assert all(s["attributes"]["sightline.redactions"] == {"email": 1} for s in got)
        assert all("pii_redacted" in s["ingest_notes"] for s in got)
        # only the retention changes; the policy stays
        r = h.api("PUT", "/api/v1/projects/alpha/privacy", json={"retention_days": None})
        assert r.json()["retention_source"] == "server_default"
        assert r.json()["policy"]["types"]["email"] == "hash"
        assert _actions(h)[:2] == ["privacy.update", "privacy.update"]

    @pytest.mark.parametrize(
        "body",
        [{"policy": {"types": {"email": "blur"}}}, {"retention_days": -1}, {"nope": 1},
         {"policy": {"fields": {"prompt": "mask"}}},
         # true is not "retention on": it was read as 1 day, and everything older purged
         {"retention_days": True}, {"retention_days": False}],
    )  # fmt: skip
    def test_bad_settings_are_400(self, h: TwoProjects, body: dict[str, object]) -> None:
        r = h.api("PUT", "/api/v1/projects/alpha/privacy", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] in ("invalid_request", "invalid_config")

    def test_other_project_is_not_found(self, h: TwoProjects) -> None:
        assert h.api("GET", "/api/v1/projects/beta/privacy").status_code == 404
        r = h.api("PUT", "/api/v1/projects/beta/privacy", json={"retention_days": 1})
        assert r.status_code == 404
        assert h.api("GET", "/api/v1/projects/beta/privacy", project="beta").json()[
            "retention_days"] == 0  # fmt: skip


def _log(trace_id: str, body: str, ns: str) -> dict[str, object]:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": ns, "traceId": trace_id, "body": {"stringValue": body}}]}]}]}  # fmt: skip


class TestRetentionAndErasure:
    def test_retention_deletes_old_spans_and_their_scores(self, h: TwoProjects) -> None:
        old = spans_for("alpha", 2, user="old", marker="old", start=h.clock() - timedelta(days=40))
        assert h.api("POST", "/api/v1/spans", json=old).json()["accepted"] == 2
        h.api("POST", "/api/v1/feedback", json={"trace_id": old[0]["trace_id"], "score": -1})
        for days in (40, 1):
            ns = str(int((h.clock() - timedelta(days=days)).timestamp() * 1e9))
            r = h.api("POST", "/v1/logs", json=_log(old[0]["trace_id"], f"log {days}d", ns))
            assert r.status_code == 200, r.text
        h.api("PUT", "/api/v1/projects/alpha/privacy", json={"retention_days": 30})
        st = h.app.state.sightline
        task = RetentionTask(st.store, st.security.privacy, interval_s=0, clock=h.clock)
        task.run_once()
        logs = st.store.list_logs(LogQuery(project_id="alpha", trace_id=old[0]["trace_id"])).records
        assert [x.body for x in logs] == ["log 1d"]  # the 40-day-old record aged out
        left = h.api("GET", "/api/v1/spans", params={"limit": 100}).json()["data"]
        assert {s["user_id"] for s in left} == {"user-alpha"} and len(left) == 3
        assert h.api("GET", f"/api/v1/traces/{old[0]['trace_id']}").status_code == 404
        assert st.store.list_scores("alpha", old[0]["trace_id"]) == []
        assert st.store.count_spans("beta") == 3  # beta keeps everything (retention 0)
        entry = h.api("GET", "/api/v1/audit").json()["data"][0]
        assert entry["action"] == "retention.purge" and entry["actor"] == "system"
        assert entry["details"]["spans"] == 2 and entry["details"]["scores"] == 1

    def test_a_failing_purge_does_not_hold_up_the_other_projects(self, h: TwoProjects) -> None:
        """alpha's purge fails (a store error): beta, listed after it, is purged all the same."""
        from sightline.errors import StoreError

        st = h.app.state.sightline
        real = st.store

        class FailingAlpha:  # the real store, but alpha's purge fails
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def purge_before(self, project_id: str, cutoff: object) -> object:
                if project_id == "alpha":
                    raise StoreError("write conflict: alpha")
                return real.purge_before(project_id, cutoff)

        start = h.clock() - timedelta(days=40)
        for p in ("alpha", "beta"):
            old = spans_for(p, 2, user="old", marker="old", start=start)
            assert h.api("POST", "/api/v1/spans", json=old, project=p).status_code == 200
            r = h.api("PUT", f"/api/v1/projects/{p}/privacy", json={"retention_days": 30},
                      project=p)  # fmt: skip
            assert r.status_code == 200, r.text
        task = RetentionTask(FailingAlpha(), st.security.privacy, interval_s=0, clock=h.clock)  # type: ignore[arg-type]
        task.run_once()
        assert real.count_spans("alpha") == 5  # 3 recent + 2 old, kept for the next run
        assert real.count_spans("beta") == 3
        assert h.api("GET", "/api/v1/audit", project="beta").json()["data"][0]["action"] == (
            "retention.purge"
        )

    def test_erasure_deletes_a_users_traces_scores_and_feedback(self, h: TwoProjects) -> None:
        a = h.projects["alpha"]
        other = spans_for("alpha", 1, user="someone-else", marker="keep", start=h.clock())
        h.api("POST", "/api/v1/spans", json=other)
        # feedback the user gave on someone else's trace goes too
        h.api("POST", "/api/v1/feedback", json={"trace_id": other[0]["trace_id"], "score": 1,
                                                "user_id": a.user_id})  # fmt: skip
        ns = str(int(h.clock().timestamp() * 1e9))
        for tid in (a.trace_ids[0], other[0]["trace_id"]):
            r = h.api("POST", "/v1/logs", json=_log(tid, f"prompt of {tid}", ns))
            assert r.status_code == 200, r.text
        r = h.api("DELETE", f"/api/v1/users/{a.user_id}/data")
        assert r.status_code == 200, r.text
        store = h.app.state.sightline.store
        assert store.list_logs(LogQuery(project_id="alpha", trace_id=a.trace_ids[0])).records == []
        assert (
            len(
                store.list_logs(LogQuery(project_id="alpha", trace_id=other[0]["trace_id"])).records
            )
            == 1
        )
        assert r.json()["deleted_spans"] == 3 and r.json()["deleted_scores"] == 2
        assert a.user_id not in r.text
        st = h.app.state.sightline
        assert st.store.count_spans("alpha") == 1
        assert st.store.list_scores("alpha", other[0]["trace_id"]) == []
        assert st.store.count_spans("beta") == 3
        entry = h.api("GET", "/api/v1/audit").json()["data"][0]
        assert entry["action"] == "user.erase" and a.user_id not in str(entry)
        assert entry["target"] == r.json()["user"]
        assert h.api("DELETE", f"/api/v1/users/{a.user_id}/data", role="read").status_code == 403


class TestAuditAndHeaders:
    def test_rule_changes_are_audited(self, h: TwoProjects) -> None:
        assert h.api("PUT", "/api/v1/alerts/rules/rule-alpha", json={**_rule("rule-alpha")}
                     ).status_code == 200  # fmt: skip
        entry = h.api("GET", "/api/v1/audit").json()["data"][0]
        assert entry["action"] == "PUT /api/v1/alerts/rules/{name}"
        assert entry["actor"] == f"key:{h.projects['alpha'].key_ids['admin']}"
        assert entry["details"]["path_params"] == {"name": "rule-alpha"}
        # telemetry and reads are not admin actions
        n = len(_actions(h))
        h.api("GET", "/api/v1/spans")
        h.api("POST", "/api/v1/feedback", json={"trace_id": "0" * 31 + "1", "score": 1})
        assert len(_actions(h)) == n

    def test_security_headers_on_every_response(self, h: TwoProjects) -> None:
        for r in (h.client.get("/healthz"), h.client.get("/nope"), h.api("GET", "/api/v1/spans"),
                  h.client.get("/api/v1/spans")):  # fmt: skip
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert "default-src 'none'" in r.headers["content-security-policy"]

    def test_a_routes_own_csp_is_kept(self, h: TwoProjects) -> None:
        page_csp = "default-src 'self'; frame-ancestors 'none'"

        @h.app.get("/_page")
        async def page() -> HTMLResponse:
            return HTMLResponse("<p>hi</p>", headers={"content-security-policy": page_csp})

        r = h.client.get("/_page")
        assert r.headers["content-security-policy"] == page_csp
        assert r.headers["x-content-type-options"] == "nosniff"


def test_binds_to_loopback_by_default() -> None:
    from click.testing import CliRunner

    from sightline.cli import main
    from sightline.config import Settings

    assert Settings().host == "127.0.0.1"
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "127.0.0.1" in out


class TestLimits:
    @pytest.fixture
    def small(self, tmp_path: Path) -> Iterator[TwoProjects]:
        yield from two_projects(tmp_path, max_spans_per_request=5, max_attributes=4,
                                max_value_depth=3)  # fmt: skip

    def test_span_count_attribute_count_and_depth(self, small: TwoProjects) -> None:
        h = small
        many = spans_for("alpha", 6, user="u", marker="m", start=h.clock())
        r = h.api("POST", "/api/v1/spans", json=many)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert h.api("POST", "/api/v1/spans", json=many[:5]).status_code == 200
        span = spans_for("alpha", 1, user="u", marker="m", start=h.clock())[0]
        span["attributes"] = {f"a{i}": "v" for i in range(10)} | {}
        r = h.api("POST", "/api/v1/spans", json=[span])
        assert r.status_code == 200 and r.json()["repaired_reasons"]["attributes_dropped"] == 1
        got = h.api("GET", f"/api/v1/traces/{span['trace_id']}").json()["spans"][0]
        assert len([k for k in got["attributes"] if k.startswith("a")]) <= 4
        deep = spans_for("alpha", 1, user="u", marker="m", start=h.clock())[0]
        deep["attributes"] = {"deep": [[[["bottom"]]]]}
        assert h.api("POST", "/api/v1/spans", json=[deep]).status_code == 200
        got = h.api("GET", f"/api/v1/traces/{deep['trace_id']}").json()["spans"][0]
        assert got["attributes"]["deep"] == [["<TOO_DEEP>"]]
        assert "value_too_deep" in got["ingest_notes"]

    def test_an_unreadable_stored_policy_falls_back_to_redacting(self, small: TwoProjects) -> None:
        from datetime import UTC, datetime

        from sightline.store.base import PrivacySettings

        h = small
        h.store.set_privacy(PrivacySettings("alpha", {"types": {"gone": "mask"}}, None,
                                            datetime.now(UTC)))  # fmt: skip
        h.app.state.sightline.security.privacy._cache.clear()
        span = spans_for("alpha", 1, user="u", marker="mail a.b@example.com", start=h.clock())
        assert h.api("POST", "/api/v1/spans", json=span).status_code == 200
        got = h.api("GET", f"/api/v1/traces/{span[0]['trace_id']}").json()["spans"][0]
        assert "a.b@example.com" not in got["input"]


def test_an_unexpected_error_has_the_security_headers_too(h: TwoProjects) -> None:
    from fastapi.testclient import TestClient

    @h.app.get("/_boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    r = TestClient(h.app, raise_server_exceptions=False).get("/_boom")
    assert r.status_code == 500 and r.json()["error"]["message"] == "internal error"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
