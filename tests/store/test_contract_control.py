"""Projects, keys, users, privacy, audit, retention, erasure, budgets and prompts: the same on
every backend (see conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sightline.errors import ConfigError, Conflict, NotFound
from sightline.model import Delivery, Outcome, PromptVersion
from sightline.store import Membership, User, UserSession
from sightline.store._eval_records import Dataset
from sightline.store.base import ApiKey, AuditEntry, BudgetRow, PrivacySettings, TraceStore
from store._spans import T0, batch, span_record

HASH_A = "a" * 16 + "0" * 48
HASH_B = "b" * 16 + "1" * 48


def _key(h: str, project: str = "p", *, at: datetime = T0, name: str | None = None) -> ApiKey:
    return ApiKey(h, "sl_" + h[:4], project, "ingest", at, name)


class TestProjects:
    def test_create_get_list(self, any_store: TraceStore) -> None:
        assert any_store.list_projects() == []
        assert any_store.get_project("b") is None
        b = any_store.create_project("b")
        a = any_store.create_project("a")
        assert b.id == "b" and b.created_at.tzinfo is UTC
        assert abs(b.created_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert any_store.get_project("b") == b
        assert [p.id for p in any_store.list_projects()] == ["a", "b"]
        assert any_store.list_projects() == [a, b]

    def test_a_second_project_of_one_id_is_refused(self, any_store: TraceStore) -> None:
        any_store.create_project("p")
        with pytest.raises(ConfigError, match="already exists"):
            any_store.create_project("p")
        assert len(any_store.list_projects()) == 1


class TestApiKeys:
    def test_a_live_key_is_found_by_hash(self, any_store: TraceStore) -> None:
        any_store.add_api_key(_key(HASH_A, name="ci"))
        k = any_store.find_api_key(HASH_A)
        assert k is not None
        assert (k.key_hash, k.prefix, k.project_id, k.role) == (HASH_A, "sl_aaaa", "p", "ingest")
        assert k.created_at == T0
        assert any_store.find_api_key(HASH_B) is None

    def test_list_oldest_first_with_names_and_last_use(self, any_store: TraceStore) -> None:
        any_store.add_api_key(_key(HASH_B, at=T0 + timedelta(hours=1)))
        any_store.add_api_key(_key(HASH_A, name="ci"))
        any_store.add_api_key(_key("c" * 64, project="other"))
        assert any_store.list_api_keys("nobody") == []
        keys = any_store.list_api_keys("p")
        assert [k.key_hash for k in keys] == [HASH_A, HASH_B]
        assert keys[0].name == "ci" and keys[1].name is None
        assert all(k.last_used_at is None and k.revoked_at is None for k in keys)
        used = T0 + timedelta(days=1)
        any_store.touch_api_keys({HASH_A: used})
        any_store.touch_api_keys({HASH_A: used + timedelta(seconds=5)})
        any_store.touch_api_keys({})
        keys = any_store.list_api_keys("p")
        assert keys[0].last_used_at == used + timedelta(seconds=5)
        assert keys[1].last_used_at is None

    def test_revoke_by_id_once(self, any_store: TraceStore) -> None:
        any_store.add_api_key(_key(HASH_A))
        any_store.add_api_key(_key(HASH_B))
        assert any_store.revoke_api_key("other", HASH_A[:16]) is None  # another project's
        assert any_store.revoke_api_key("p", "") is None
        assert any_store.revoke_api_key("p", "a" * 15) is None
        assert any_store.revoke_api_key("p", "A" * 16) is None
        got = any_store.revoke_api_key("p", HASH_A[:16])
        assert got is not None and got.key_hash == HASH_A
        assert any_store.find_api_key(HASH_A) is None
        assert any_store.find_api_key(HASH_B) is not None
        assert any_store.revoke_api_key("p", HASH_A[:16]) is None  # already revoked
        [a, b] = any_store.list_api_keys("p")
        assert a.revoked_at is not None and a.revoked_at.tzinfo is UTC
        assert b.revoked_at is None

    def test_use_after_revocation_does_not_bring_a_key_back(self, any_store: TraceStore) -> None:
        any_store.add_api_key(_key(HASH_A))
        any_store.revoke_api_key("p", HASH_A[:16])
        any_store.touch_api_keys({HASH_A: T0 + timedelta(days=2)})
        assert any_store.find_api_key(HASH_A) is None
        [a] = any_store.list_api_keys("p")
        assert a.revoked_at is not None and a.last_used_at == T0 + timedelta(days=2)

    def test_a_revocation_wins_over_a_node_whose_clock_runs_ahead(
        self, any_store: TraceStore
    ) -> None:
        """ClickHouse: row versions are clock-based; an update still replaces a later one."""
        if not hasattr(any_store, "_insert_rows"):
            pytest.skip("DuckDB updates rows in place")
        ahead = any_store._version() + 3600 * 10**9  # written by a node an hour ahead
        any_store._insert_rows(
            "api_keys",
            ["key_hash", "prefix", "project_id", "role", "created_at", "name", "_version"],
            [[HASH_A, "sl_aaaa", "p", "ingest", T0.replace(tzinfo=None), None, ahead]],
        )
        assert any_store.find_api_key(HASH_A) is not None
        assert any_store.revoke_api_key("p", HASH_A[:16]) is not None
        assert any_store.find_api_key(HASH_A) is None


class TestUsers:
    def test_users_are_unique_by_email(self, any_store: TraceStore) -> None:
        assert any_store.count_users() == 0
        ada = User("u1", "ada@example.com", "$argon2id$x", True, T0)
        any_store.create_user(ada)
        assert any_store.get_user("u1") == ada
        assert any_store.get_user_by_email(" ADA@example.com ") == ada
        assert any_store.get_user("nope") is None
        assert any_store.get_user_by_email("x@y.z") is None
        with pytest.raises(ConfigError, match="exists"):
            any_store.create_user(User("u2", "ada@example.com", "h", False, T0))
        any_store.create_user(User("u3", "bob@example.com", "h", False, T0))
        assert any_store.count_users() == 2

    def test_the_first_user_is_created_only_while_there_is_none(
        self, any_store: TraceStore
    ) -> None:
        ada = User("u1", "ada@example.com", "h", True, T0)
        assert any_store.create_first_user(ada) is True
        assert any_store.get_user("u1") == ada
        assert any_store.create_first_user(User("u2", "bob@example.com", "h", True, T0)) is False
        assert any_store.get_user("u2") is None and any_store.count_users() == 1

    def test_sessions_expire_and_log_out(self, any_store: TraceStore) -> None:
        s = UserSession("h1", "u1", "csrf", T0, T0 + timedelta(hours=1))
        any_store.create_session(s)
        assert any_store.get_session("h1", T0 + timedelta(minutes=59)) == s
        assert any_store.get_session("h1", T0 + timedelta(hours=1)) is None
        assert any_store.get_session("nope", T0) is None
        any_store.create_session(UserSession("h2", "u1", "c2", T0, T0 + timedelta(hours=1)))
        any_store.delete_session("h1")
        any_store.delete_session("never")
        assert any_store.get_session("h1", T0) is None
        assert any_store.get_session("h2", T0) is not None

    def test_memberships(self, any_store: TraceStore) -> None:
        any_store.create_user(User("u1", "zed@example.com", "h", False, T0))
        any_store.create_user(User("u2", "amy@example.com", "h", False, T0))
        any_store.add_membership(Membership("u1", "beta", "viewer", T0))
        any_store.add_membership(Membership("u1", "alpha", "viewer", T0))
        any_store.add_membership(Membership("u1", "alpha", "admin", T0))  # replaces
        any_store.add_membership(Membership("u2", "alpha", "viewer", T0))
        ms = any_store.list_memberships("u1")
        assert [(m.project_id, m.role) for m in ms] == [("alpha", "admin"), ("beta", "viewer")]
        assert ms[0].created_at == T0
        members = any_store.list_members("alpha")
        assert [(u.email, m.role, m.project_id) for u, m in members] == [
            ("amy@example.com", "viewer", "alpha"),
            ("zed@example.com", "admin", "alpha"),
        ]
        assert any_store.remove_membership("u1", "beta") is True
        assert any_store.remove_membership("u1", "beta") is False
        assert [m.project_id for m in any_store.list_memberships("u1")] == ["alpha"]
        assert any_store.list_memberships("nobody") == [] and any_store.list_members("x") == []
        any_store.add_membership(Membership("u1", "beta", "viewer", T0))  # back after removal
        assert len(any_store.list_memberships("u1")) == 2


class TestPrivacyAndAudit:
    def test_privacy_set_replace_read(self, any_store: TraceStore) -> None:
        assert any_store.get_privacy("p") is None
        s = PrivacySettings("p", {"mode": "mask", "entities": ["email"]}, 30, T0)
        any_store.set_privacy(s)
        assert any_store.get_privacy("p") == s
        s2 = PrivacySettings("p", None, None, T0 + timedelta(hours=1))
        any_store.set_privacy(s2)
        assert any_store.get_privacy("p") == s2
        assert any_store.get_privacy("other") is None

    def test_audit_newest_first_with_paging(self, any_store: TraceStore) -> None:
        for i in range(5):
            any_store.add_audit(
                AuditEntry(
                    "p", f"a{i}", T0 + timedelta(minutes=i), "cli", "key.create", f"k{i}", {"i": i}
                )  # fmt: skip
            )
        any_store.add_audit(AuditEntry("q", "x", T0, "cli", "key.create", None, {}))
        any_store.add_audit(AuditEntry(None, "srv", T0, "system", "retention", None, {}))
        got = any_store.list_audit("p")
        assert [e.audit_id for e in got] == ["a4", "a3", "a2", "a1", "a0"]
        assert got[0].details == {"i": 4} and got[0].at == T0 + timedelta(minutes=4)
        assert got[0].at.tzinfo is UTC and got[0].target == "k4"
        page = any_store.list_audit("p", limit=2, before=T0 + timedelta(minutes=3))
        assert [e.audit_id for e in page] == ["a2", "a1"]
        assert [e.audit_id for e in any_store.list_audit("q")] == ["x"]
        assert any_store.list_audit("none") == []


def _outcome(oid: str, **over: object) -> Outcome:
    fields: dict[str, object] = {"project_id": "p", "outcome_id": oid, "name": "converted",
                                 "created_at": T0}  # fmt: skip
    fields.update(over)
    return Outcome(**fields)  # type: ignore[arg-type]


def _has_scores(store: TraceStore) -> bool:
    """False on a backend whose scores part is built on another branch (until it merges)."""
    return hasattr(store, "add_scores") and hasattr(store, "list_scores")


class TestRetentionAndErasure:
    def test_purge_removes_old_spans_outcomes_and_nothing_newer(
        self, any_store: TraceStore
    ) -> None:
        old = [span_record(start=T0 - timedelta(days=10, minutes=i)) for i in range(3)]
        new = [span_record(start=T0 + timedelta(minutes=i)) for i in range(2)]
        other = span_record(project_id="q", start=T0 - timedelta(days=10))
        any_store.insert_batches([batch(*old, *new, other)])
        any_store.add_outcomes(
            [_outcome("o1", trace_id=old[0]["trace_id"], created_at=T0 - timedelta(days=10)),
             _outcome("o2", trace_id=new[0]["trace_id"])]
        )  # fmt: skip
        from sightline.model import DriftResult
        from sightline.store.base import DriftQuery

        def drift(rid: str, at: datetime, project: str = "p") -> DriftResult:
            return DriftResult(project_id=project, result_id=rid, job="j", detector="d",
                               feature="prompt", created_at=at, current_start=at,
                               current_end=at, num_baseline=1, num_current=1, score=0.5,
                               fired=True, details={"examples": [f"prompt of {rid}"]})  # fmt: skip

        old_at = T0 - timedelta(days=10)
        any_store.add_drift_results([drift("r-old", old_at), drift("r-new", T0),
                                     drift("r-q", old_at, "q")])  # fmt: skip
        d = any_store.purge_before("p", T0 - timedelta(days=1))
        assert d.spans == 3
        kept = any_store.list_drift_results(DriftQuery(project_id="p", limit=10))
        assert [r.result_id for r in kept] == ["r-new"]
        assert len(any_store.list_drift_results(DriftQuery(project_id="q", limit=10))) == 1
        assert any_store.count_spans("p") == 2 and any_store.count_spans("q") == 1
        assert [o.outcome_id for o in any_store.list_outcomes("p")] == ["o2"]
        assert any_store.purge_before("p", T0 - timedelta(days=1)).spans == 0

    def test_erase_user_removes_their_traces_and_outcomes(self, any_store: TraceStore) -> None:
        root = span_record(user_id="u1", session_id="s1")
        child = span_record(trace_id=root["trace_id"], parent_span_id=root["span_id"])
        keep = span_record(user_id="u2", session_id="s2")
        any_store.insert_batches([batch(root, child, keep)])
        any_store.add_outcomes(
            [_outcome("o1", session_id="s1"), _outcome("o2", trace_id=keep["trace_id"]),
             _outcome("o3", user_id="u1", trace_id="f" * 32)]
        )  # fmt: skip
        d = any_store.erase_user("p", "u1")
        assert d.spans == 2
        assert any_store.get_trace("p", root["trace_id"]) == []
        assert len(any_store.get_trace("p", keep["trace_id"])) == 1
        assert [o.outcome_id for o in any_store.list_outcomes("p")] == ["o2"]
        assert any_store.erase_user("p", "u1").spans == 0
        assert any_store.erase_user("p", "nobody").spans == 0

    def test_erase_user_removes_their_rows_from_datasets(self, any_store: TraceStore) -> None:
        mine = span_record(user_id="u1", input="alice's question")
        theirs = span_record(user_id="u2", input="bob's question")
        child = span_record(trace_id=mine["trace_id"], parent_span_id=mine["span_id"])
        other = span_record(project_id="q", user_id="u1")
        any_store.insert_batches([batch(mine, theirs, child, other)])

        def row(s: dict[str, object], user: str | None) -> dict[str, object]:
            meta = {"user_id": user} if user else {}
            return {"id": f"{s['trace_id']}:{s['span_id']}", "question": s["input"],
                    "answer": "a", "contexts": [], "metadata": meta}  # fmt: skip

        def ds(did: str, n: int, project: str = "p") -> Dataset:
            return Dataset(project_id=project, dataset_id=did, name=did, filter={}, num_rows=n,
                           created_at=T0)  # fmt: skip

        # as POST /api/v1/datasets saves them: id "trace:span", the span's user in metadata
        any_store.create_dataset(
            ds("d1", 3), [row(mine, "u1"), row(theirs, "u2"), row(child, None)]
        )
        any_store.create_dataset(ds("d2", 1), [row(theirs, "u2")])
        any_store.create_dataset(ds("d3", 1, "q"), [row(other, "u1")])
        any_store.erase_user("p", "u1")
        assert [r["question"] for r in any_store.get_dataset_rows("p", "d1")] == ["bob's question"]
        assert (d1 := any_store.get_dataset("p", "d1")) is not None and d1.num_rows == 1
        assert (d2 := any_store.get_dataset("p", "d2")) is not None and d2.num_rows == 1
        assert len(any_store.get_dataset_rows("p", "d2")) == 1
        assert len(any_store.get_dataset_rows("q", "d3")) == 1  # another project's: untouched

    def test_erase_user_removes_log_records_naming_them(self, any_store: TraceStore) -> None:
        """Log records without a trace of the user's, but with their id as an attribute."""
        import pyarrow as pa

        from sightline.ingest._signals import LOG_SCHEMA, dumps_attrs
        from sightline.store.base import LogQuery

        def log(
            body: str, attrs: dict[str, object], res: dict[str, object] | None = None,
            project: str = "p",
        ) -> dict[str, object]:  # fmt: skip
            return {"project_id": project, "time": int(T0.timestamp() * 1e9), "body": body,
                    "attributes": dumps_attrs(attrs),
                    "resource_attributes": dumps_attrs(res or {})}  # fmt: skip

        recs = [
            log("mine user.id", {"user.id": "u1"}),
            log("mine enduser.id", {"enduser.id": "u1", "x": 1}),
            log("mine resource", {}, {"enduser.id": "u1"}),
            log("mine ai sdk", {"ai.telemetry.metadata.userId": "u1"}),
            log("theirs", {"user.id": "u12"}),
            log("other key", {"note": "u1"}),
            log("other project", {"user.id": "u1"}, project="q"),
        ]
        cols: dict[str, list[object]] = {f.name: [] for f in LOG_SCHEMA}
        for r in recs:
            for f in LOG_SCHEMA:
                cols[f.name].append(r.get(f.name))
        any_store.insert_signal_batches("logs", [pa.table(cols, schema=LOG_SCHEMA)])
        any_store.erase_user("p", "u1")
        left = any_store.list_logs(LogQuery(project_id="p", limit=100)).records
        assert sorted(x.body or "" for x in left) == ["other key", "theirs"]
        assert len(any_store.list_logs(LogQuery(project_id="q", limit=100)).records) == 1

    def test_erase_user_removes_their_texts_quoted_in_drift_results(
        self, any_store: TraceStore
    ) -> None:
        """Drift detectors quote prompts and answers (cut at 300 characters) as examples."""
        from sightline.model import DriftResult
        from sightline.store.base import DriftQuery

        long_prompt = "alice asks about her diagnosis " * 20  # > 300 characters
        mine = span_record(user_id="u1", input=long_prompt, output="alice's answer")
        child = span_record(trace_id=mine["trace_id"], parent_span_id=mine["span_id"],
                            input="alice's retrieval query")  # fmt: skip
        theirs = span_record(user_id="u2", input="bob's prompt", output="bob's answer")
        any_store.insert_batches([batch(mine, child, theirs)])

        def result(rid: str, details: dict[str, object], project: str = "p") -> DriftResult:
            return DriftResult(project_id=project, result_id=rid, job="j", detector="d",
                               feature="prompt", created_at=T0, current_start=T0,
                               current_end=T0, num_baseline=1, num_current=1, score=0.5,
                               fired=True, details=details)  # fmt: skip

        any_store.add_drift_results([
            result("mmd", {"sigma2": 1.5, "examples": [long_prompt[:300], "bob's prompt",
                                                        "alice's retrieval query"]}),
            result("same", {"num_prompts": 2, "examples": [
                {"prompt": "alice's answer", "mean_cos": 0.1},
                {"prompt": "bob's answer", "mean_cos": 0.2}]}),
            result("topics", {"novel_prompts": 3, "topics": [
                {"size": 2, "keywords": ["alice"], "examples": [long_prompt[:300]]}]}),
            result("psi", {"bins": [1, 2]}),
            result("other", {"examples": [long_prompt[:300]]}, project="q"),
        ])  # fmt: skip
        any_store.erase_user("p", "u1")
        got = {r.result_id: r.details for r in any_store.list_drift_results(
            DriftQuery(project_id="p", limit=100))}  # fmt: skip
        assert got == {
            "mmd": {"sigma2": 1.5, "examples": ["bob's prompt"]},
            "same": {"num_prompts": 2, "examples": [{"prompt": "bob's answer", "mean_cos": 0.2}]},
            "topics": {"novel_prompts": 3, "topics": [
                {"size": 2, "keywords": ["alice"], "examples": []}]},
            "psi": {"bins": [1, 2]},
        }  # fmt: skip
        other = any_store.list_drift_results(DriftQuery(project_id="q", limit=10))
        assert other[0].details == {"examples": [long_prompt[:300]]}  # another project's

    def test_erase_user_removes_their_per_user_budget_marks(self, any_store: TraceStore) -> None:
        """budget_alerts rows hold the user's id and spend; marks of the others stay."""
        any_store.put_budget(BudgetRow("p", "per-user", {"scope": "user", "limit_usd": 1},
                                       "api", T0, T0))  # fmt: skip
        any_store.put_budget(BudgetRow("p", "per-tenant", {"scope": "tenant", "limit_usd": 1},
                                       "api", T0, T0))  # fmt: skip

        def mark(budget: str, value: str, project: str = "p") -> bool:
            return any_store.mark_budget_alert(project, budget, value, T0, 0.5, 0.6, T0)

        marks = [("per-user", "u1"), ("per-user", "u2"), ("per-tenant", "u1"),
                 ("gone-budget", "u1")]  # fmt: skip
        for budget, value in marks:
            assert mark(budget, value)
        assert mark("per-user", "u1", project="q")
        any_store.erase_user("p", "u1")
        # a mark that is gone can be made again; one that stayed cannot
        assert mark("per-user", "u1")  # erased
        assert mark("gone-budget", "u1")  # erased: its budget (and scope) is unknown now
        assert not mark("per-user", "u2")
        assert not mark("per-tenant", "u1")  # a tenant named like the user keeps its mark
        assert not mark("per-user", "u1", project="q")

    def test_erasure_rewrites_the_rows_out_not_only_masks_them(self, any_store: TraceStore) -> None:
        """ClickHouse: erased rows are gone from the parts, unlike a lightweight delete's."""
        if not hasattr(any_store, "_q"):
            pytest.skip(
                "DuckDB rewrites its file with `sightline compact` (tests/e2e/test_erasure_e2e.py)"
            )
        secret = span_record(user_id="u1", input="my card is 4111 1111 1111 1111")
        any_store.insert_batches([batch(secret, span_record(user_id="u2"))])
        any_store.erase_user("p", "u1")
        raw = any_store._q(
            "SELECT count() FROM spans WHERE positionUTF8(coalesce(input, ''), '4111') > 0"
            " SETTINGS apply_deleted_mask = 0"
        )
        assert raw == [(0,)]
        assert any_store.count_spans("p") == 1

    def test_erase_and_purge_take_scores_along(self, any_store: TraceStore) -> None:
        if not _has_scores(any_store):
            pytest.skip("this backend's scores part is not in this build")
        from sightline.model import Score

        mine = span_record(user_id="u1")
        old = span_record(start=T0 - timedelta(days=10))
        any_store.insert_batches([batch(mine, old)])

        def score(sid: str, trace: str) -> Score:
            return Score(project_id="p", score_id=sid, trace_id=trace, span_id=None,
                         name="thumbs", value=1.0, source="user", created_at=T0)  # fmt: skip

        any_store.add_scores([score("s1", mine["trace_id"]), score("s2", old["trace_id"])])
        assert any_store.erase_user("p", "u1").scores == 1
        assert any_store.list_scores("p", mine["trace_id"]) == []
        assert any_store.purge_before("p", T0 - timedelta(days=1)).scores == 1
        assert any_store.list_scores("p", old["trace_id"]) == []


class TestBudgets:
    def test_put_replace_list_delete(self, any_store: TraceStore) -> None:
        assert any_store.list_budgets("p") == []
        b = BudgetRow("p", "daily", {"limit_usd": 5}, "api", T0, T0)
        any_store.put_budget(b)
        any_store.put_budget(BudgetRow("p", "a-first", {"limit_usd": 1}, "file", T0, T0))
        later = T0 + timedelta(hours=1)
        any_store.put_budget(BudgetRow("p", "daily", {"limit_usd": 9}, "api", later, later))
        got = any_store.list_budgets("p")
        assert [r.name for r in got] == ["a-first", "daily"]
        assert got[1].spec == {"limit_usd": 9}
        assert got[1].created_at == T0 and got[1].updated_at == later  # creation kept
        assert any_store.delete_budget("p", "daily") is True
        assert any_store.delete_budget("p", "daily") is False
        assert [r.name for r in any_store.list_budgets("p")] == ["a-first"]
        assert any_store.list_budgets("other") == []

    def test_spend_by_scope(self, any_store: TraceStore) -> None:
        any_store.insert_batches(
            [batch(span_record(user_id="u1", cost_usd=0.5),
                   span_record(user_id="u1", cost_usd=0.25),
                   span_record(user_id="u2", cost_usd=1.0),
                   span_record(user_id=None, cost_usd=2.0),
                   span_record(user_id="u1", cost_usd=None),
                   span_record(user_id="u1", cost_usd=9.0, start=T0 - timedelta(days=1)))]
        )  # fmt: skip
        s = any_store.budget_spend("p", T0)
        assert (s.spent_usd, s.num_requests, s.max_request_usd) == (3.75, 4, 2.0)
        s = any_store.budget_spend("p", T0, column="user_id", value="u1")
        assert (s.spent_usd, s.num_requests, s.max_request_usd) == (0.75, 2, 0.5)
        s = any_store.budget_spend("p", T0, column="user_id", value="nobody")
        assert (s.spent_usd, s.num_requests, s.max_request_usd) == (0.0, 0, 0.0)
        assert any_store.budget_spend_by("p", T0, "user_id") == {"u1": 0.75, "u2": 1.0}
        assert any_store.budget_spend_by("empty", T0, "user_id") == {}
        with pytest.raises(ValueError, match="scope column"):
            any_store.budget_spend("p", T0, column="input", value="x")
        with pytest.raises(ValueError, match="scope column"):
            any_store.budget_spend_by("p", T0, "input; DROP TABLE spans")

    def test_a_threshold_alerts_once_per_period(self, any_store: TraceStore) -> None:
        args = ("p", "daily", "u1", T0, 0.8)
        assert any_store.mark_budget_alert(*args, 4.1, T0) is True
        assert any_store.mark_budget_alert(*args, 4.5, T0 + timedelta(minutes=1)) is False
        assert any_store.mark_budget_alert("p", "daily", "u1", T0, 1.0, 5.0, T0) is True
        nxt = T0 + timedelta(days=1)
        assert any_store.mark_budget_alert("p", "daily", "u1", nxt, 0.8, 4.0, nxt) is True

    def test_a_marks_deliveries_are_stored_only_by_the_call_that_made_it(
        self, any_store: TraceStore
    ) -> None:
        def d(i: int) -> Delivery:
            return Delivery(
                project_id="p",
                delivery_id=f"d{i}",
                alert_id="budget-1",
                channel="hook",
                event="firing",
                status="pending",
                payload={"i": i},
                created_at=T0,
                updated_at=T0,
            )

        args = ("p", "daily", "u1", T0, 0.8, 4.1, T0)
        assert any_store.mark_budget_alert(*args, [d(0)]) is True
        assert any_store.mark_budget_alert(*args, [d(1)]) is False
        assert [x.delivery_id for x in any_store.list_deliveries("p")] == ["d0"]


def _pv(
    name: str = "greet", *, kind: str = "prompt", at: datetime = T0, **over: object
) -> PromptVersion:
    fields: dict[str, object] = {"project_id": "p", "name": name, "version": 0, "kind": kind,
                                 "template": "Hello {{name}}", "created_at": at}  # fmt: skip
    fields.update(over)
    return PromptVersion(**fields)  # type: ignore[arg-type]


class TestPrompts:
    def test_versions_number_up_per_name(self, any_store: TraceStore) -> None:
        v1 = any_store.add_prompt_version(_pv(author="ada", message="first"), labels=["production"],
                                          updated_by="ada")  # fmt: skip
        assert (v1.version, v1.labels, v1.author, v1.message) == (1, ["production"], "ada", "first")
        chat = [{"role": "system", "content": "be brief"}]
        v2 = any_store.add_prompt_version(
            _pv(type="chat", template=chat, model="gpt-4o", parameters={"temperature": 0.1},
                at=T0 + timedelta(hours=1)),
            labels=[], updated_by=None,
        )  # fmt: skip
        assert v2.version == 2 and v2.template == chat and v2.labels == []
        other = any_store.add_prompt_version(_pv("other"), labels=[], updated_by=None)
        assert other.version == 1
        versions = any_store.list_prompt_versions("p", "greet")
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].labels == ["production"] and versions[0].template == "Hello {{name}}"
        assert versions[1].template == chat and versions[1].parameters == {"temperature": 0.1}
        assert versions[1].model == "gpt-4o" and versions[1].created_at == T0 + timedelta(hours=1)
        assert any_store.list_prompt_versions("p", "nope") == []

    def test_a_prompt_keeps_its_kind(self, any_store: TraceStore) -> None:
        any_store.add_prompt_version(_pv(), labels=[], updated_by=None)
        with pytest.raises(Conflict):
            any_store.add_prompt_version(_pv(kind="rubric"), labels=[], updated_by=None)
        assert len(any_store.list_prompt_versions("p", "greet")) == 1

    def test_get_by_version_label_or_latest(self, any_store: TraceStore) -> None:
        any_store.add_prompt_version(_pv(), labels=["production"], updated_by=None)
        any_store.add_prompt_version(_pv(template="Hi"), labels=["staging"], updated_by=None)
        get = any_store.get_prompt_version
        assert get("p", "greet").version == 2  # type: ignore[union-attr]
        assert get("p", "greet", label="latest").version == 2  # type: ignore[union-attr]
        assert get("p", "greet", label="production").version == 1  # type: ignore[union-attr]
        got = get("p", "greet", version=1)
        assert got is not None and got.template == "Hello {{name}}" and got.labels == ["production"]
        assert get("p", "greet", version=9) is None
        assert get("p", "greet", label="canary") is None
        assert get("p", "nope") is None

    def test_labels_move_and_go(self, any_store: TraceStore) -> None:
        any_store.add_prompt_version(_pv(), labels=["production"], updated_by=None)
        any_store.add_prompt_version(_pv(), labels=[], updated_by=None)
        at = T0 + timedelta(hours=2)
        assert any_store.set_prompt_label("p", "greet", "production", 2, at=at,
                                          updated_by="ada") == 1  # fmt: skip
        assert any_store.set_prompt_label("p", "greet", "staging", 1, at=at,
                                          updated_by=None) is None  # fmt: skip
        with pytest.raises(NotFound):
            any_store.set_prompt_label("p", "greet", "production", 7, at=at, updated_by=None)
        [s] = any_store.list_prompts("p")
        assert (s.name, s.kind, s.latest_version, s.num_versions) == ("greet", "prompt", 2, 2)
        assert s.labels == {"production": 2, "staging": 1}
        assert any_store.delete_prompt_label("p", "greet", "staging") == 1
        assert any_store.delete_prompt_label("p", "greet", "staging") is None
        assert any_store.list_prompts("p")[0].labels == {"production": 2}
        got = any_store.get_prompt_version("p", "greet", version=2)
        assert got is not None and got.labels == ["production"]

    def test_list_prompts_by_kind(self, any_store: TraceStore) -> None:
        any_store.add_prompt_version(_pv("b"), labels=[], updated_by=None)
        any_store.add_prompt_version(_pv("a", kind="rubric"), labels=[], updated_by=None)
        later = T0 + timedelta(days=1)
        any_store.add_prompt_version(_pv("b", at=later), labels=[], updated_by=None)
        assert [p.name for p in any_store.list_prompts("p")] == ["a", "b"]
        [b] = any_store.list_prompts("p", "prompt")
        assert b.name == "b" and b.updated_at == later and b.num_versions == 2
        assert [p.name for p in any_store.list_prompts("p", "rubric")] == ["a"]
        assert any_store.list_prompts("other") == []
