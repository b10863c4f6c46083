"""Budgets over the API: CRUD, bad input, the check, and soft thresholds alerting once each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from _alerting import Crash, Harness, HttpReceiver, harness, span, then_crash, wait_for


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def h(tmp_path: Path, receiver: HttpReceiver) -> Iterator[Harness]:
    yaml = f"channels:\n  hook:\n    type: webhook\n    url: {receiver.url}/hook\n"
    yield from harness(tmp_path, alerts_yaml=yaml)


def _spend(h: Harness, cost_usd: float, **kw: Any) -> None:
    h.post_spans([span(h.clock() - timedelta(seconds=5), cost_usd=cost_usd, **kw)])


class TestBudgetCrud:
    def test_create_read_replace_delete(self, h: Harness) -> None:
        body = {"name": "monthly", "limit_usd": 10, "hard": True}
        r = h.api("POST", "/api/v1/budgets", json=body)
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["scope"] == "project"
        assert got["period"] == "month"
        assert got["thresholds"] == [0.5, 0.8, 1.0]
        assert got["status"][0]["spent_usd"] == 0
        assert h.api("POST", "/api/v1/budgets", json=body).status_code == 409
        r = h.api("PUT", "/api/v1/budgets/monthly", json={"limit_usd": 20, "period": "day"})
        assert r.status_code == 200, r.text
        assert r.json()["limit_usd"] == 20
        assert [b["name"] for b in h.api("GET", "/api/v1/budgets").json()["data"]] == ["monthly"]
        assert h.api("DELETE", "/api/v1/budgets/monthly").status_code == 200
        assert h.api("GET", "/api/v1/budgets/monthly").status_code == 404
        assert h.api("DELETE", "/api/v1/budgets/monthly").status_code == 404

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "x", "limit_usd": -1},
            {"name": "x"},
            {"name": "x", "limit_usd": 1, "scope": "planet"},
            {"name": "x", "limit_usd": 1, "period": "week"},
            {"name": "x", "limit_usd": 1, "thresholds": [0]},
            {"name": "x", "limit_usd": 1, "bogus": True},
            {"name": "../etc", "limit_usd": 1},
            [1, 2],
        ],
    )
    def test_bad_budgets_are_400(self, h: Harness, body: Any) -> None:
        r = h.api("POST", "/api/v1/budgets", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"]

    def test_concurrent_creates_of_one_name_make_one_budget(self, h: Harness) -> None:
        import concurrent.futures

        body = {"name": "race", "limit_usd": 1.0}

        def create(i: int) -> int:
            r = h.api("POST", "/api/v1/budgets", json={**body, "limit_usd": 1.0 + i})
            return int(r.status_code)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(create, range(8)))
        assert codes == [201] + [409] * 7, codes

    def test_unknown_channel_is_400(self, h: Harness) -> None:
        # its threshold alerts would go nowhere (alert rules refuse it the same way)
        body = {"name": "x", "limit_usd": 1, "notify": ["hook", "finance-slack"]}
        r = h.api("POST", "/api/v1/budgets", json=body)
        assert r.status_code == 400, r.text
        assert "unknown channel(s) finance-slack" in r.json()["error"]["message"]
        assert h.api("PUT", "/api/v1/budgets/x", json=body).status_code == 400
        assert h.api("GET", "/api/v1/budgets").json()["data"] == []
        body["notify"] = ["hook"]
        assert h.api("POST", "/api/v1/budgets", json=body).status_code == 201

    def test_name_mismatch_is_400(self, h: Harness) -> None:
        r = h.api("PUT", "/api/v1/budgets/a", json={"name": "b", "limit_usd": 1})
        assert r.status_code == 400


class TestCheck:
    def test_hard_limit_blocks_once_spent_per_user(self, h: Harness) -> None:
        h.api(
            "POST",
            "/api/v1/budgets",
            json={
                "name": "per-user",
                "scope": "user",
                "limit_usd": 1.0,
                "hard": True,
                "period": "day",
            },
        )
        h.api("POST", "/api/v1/budgets", json={"name": "soft", "limit_usd": 0.1})
        _spend(h, 0.6, user_id="u1")
        _spend(h, 0.6, user_id="u2")
        r = h.api("GET", "/api/v1/budgets/check", params={"user": "u1"}).json()
        assert r["allowed"] is True
        assert {b["name"]: b["spent_usd"] for b in r["budgets"]} == {
            "per-user": pytest.approx(0.6),
            "soft": pytest.approx(1.2),
        }
        _spend(h, 0.4, user_id="u1")
        r = h.api("GET", "/api/v1/budgets/check", params={"user": "u1"}).json()
        assert r["allowed"] is False
        assert r["blocked_by"] == "per-user"
        # another user is not blocked; a call without a user has no per-user budget
        assert h.api("GET", "/api/v1/budgets/check", params={"user": "u2"}).json()["allowed"]
        assert h.api("GET", "/api/v1/budgets/check").json()["allowed"]

    def test_model_budget_counts_calls_by_the_model_asked_for(self, h: Harness) -> None:
        # OpenAI answers gpt-4o-mini with a dated snapshot: the span's model is the answer's,
        # but the SDK and the gateway check the budget with the model they ask for.
        for name, match in (("mini", "gpt-4o-mini"), ("each", "*")):
            body = {"name": name, "scope": "model", "match": match, "limit_usd": 1.0}
            assert h.api("POST", "/api/v1/budgets", json={**body, "hard": True}).is_success
        _spend(h, 1.5, request_model="gpt-4o-mini", model="gpt-4o-mini-2024-07-18")
        _spend(h, 0.25, model="gpt-4o-mini")  # a span without its request's model
        r = h.api("GET", "/api/v1/budgets/check", params={"model": "gpt-4o-mini"}).json()
        assert {b["name"]: b["spent_usd"] for b in r["budgets"]} == {
            "mini": pytest.approx(1.75),
            "each": pytest.approx(1.75),
        }
        assert r["allowed"] is False
        listed = {b["name"]: b["status"] for b in h.api("GET", "/api/v1/budgets").json()["data"]}
        assert [(s["scope_value"], s["spent_usd"]) for s in listed["each"]] == [
            ("gpt-4o-mini", pytest.approx(1.75))
        ]

    def test_a_negative_cost_takes_nothing_off_the_spend(self, h: Harness) -> None:
        h.api("POST", "/api/v1/budgets", json={"name": "u", "scope": "user", "limit_usd": 1.0,
                                               "hard": True})  # fmt: skip
        _spend(h, 2.0, user_id="u1")
        r = h.api("POST", "/api/v1/spans", json=[
            span(h.clock() - timedelta(seconds=5), cost_usd=-1000.0, user_id="u1")])  # fmt: skip
        assert r.status_code == 200 and r.json()["repaired_reasons"] == {"invalid_cost_usd": 1}
        check = h.api("GET", "/api/v1/budgets/check", params={"user": "u1"}).json()
        assert check["allowed"] is False
        # the span is priced from its tokens instead (gpt-4o-mini, 500 in, 100 out)
        assert check["budgets"][0]["spent_usd"] == pytest.approx(2.0 + 0.000135)

    def test_listing_shows_each_users_requests(self, h: Harness) -> None:
        h.api("POST", "/api/v1/budgets", json={"name": "per-user", "scope": "user",
                                               "limit_usd": 5.0, "hard": True})  # fmt: skip
        _spend(h, 0.25, user_id="u1")
        _spend(h, 0.5, user_id="u1")
        _spend(h, 1.0, user_id="u2")
        (listed,) = h.api("GET", "/api/v1/budgets").json()["data"]
        got = [(s["scope_value"], s["spent_usd"], s["num_requests"], s["max_request_usd"])
               for s in listed["status"]]  # fmt: skip
        assert got == [("u1", 0.75, 2, 0.5), ("u2", 1.0, 1, 1.0)]
        # the same figures as the check gives
        (checked,) = h.api("GET", "/api/v1/budgets/check", params={"user": "u1"}).json()["budgets"]
        assert (checked["num_requests"], checked["max_request_usd"]) == (2, 0.5)

    def test_a_span_dated_after_the_period_counts_in_its_own(self, h: Harness) -> None:
        for period in ("day", "month"):
            h.api("POST", "/api/v1/budgets", json={"name": period, "period": period,
                                                   "limit_usd": 1.0, "hard": True})  # fmt: skip
        # a client's clock years ahead (or a typo in a backfill): not this period's spend
        h.post_spans([span(h.clock().replace(year=2099), cost_usd=5.0)])
        _spend(h, 0.25)
        check = h.api("GET", "/api/v1/budgets/check").json()
        assert check["allowed"] is True
        assert [b["spent_usd"] for b in check["budgets"]] == [0.25, 0.25]
        listed = h.api("GET", "/api/v1/budgets").json()["data"]
        assert [b["status"][0]["spent_usd"] for b in listed] == [0.25, 0.25]

    def test_period_rolls_over(self, h: Harness) -> None:
        h.api(
            "POST",
            "/api/v1/budgets",
            json={"name": "d", "limit_usd": 1.0, "hard": True, "period": "day"},
        )
        _spend(h, 2.0)
        assert not h.api("GET", "/api/v1/budgets/check").json()["allowed"]
        h.clock.advance(days=1)
        assert h.api("GET", "/api/v1/budgets/check").json()["allowed"]

    def test_check_is_scoped_to_the_key_project(self, h: Harness) -> None:
        h.api("POST", "/api/v1/budgets", json={"name": "d", "limit_usd": 1.0, "hard": True})
        _spend(h, 2.0)
        r = h.api("GET", "/api/v1/budgets/check", key="sl_wrong_key_0000000000000")
        assert r.status_code == 401

    def test_too_long_value_is_400(self, h: Harness) -> None:
        r = h.api("GET", "/api/v1/budgets/check", params={"user": "u" * 500})
        assert r.status_code == 400


class TestSoftThresholds:
    def test_each_threshold_alerts_once(self, h: Harness, receiver: HttpReceiver) -> None:
        h.api(
            "POST", "/api/v1/budgets", json={"name": "team", "limit_usd": 1.0, "notify": ["hook"]}
        )
        svc = h.state.budgets
        _spend(h, 0.3)
        svc.tick()
        _spend(h, 0.3)  # 0.6: 50%
        svc.tick()
        svc.tick()
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        _spend(h, 0.25)  # 0.85: 80%
        svc.tick()
        _spend(h, 0.5)  # 1.35: 100%
        svc.tick()
        svc.tick()
        wait_for(lambda: len(receiver.bodies("/hook")) == 3)
        h.clock.advance(seconds=1)
        svc.tick()
        got = receiver.bodies("/hook")
        assert [b["labels"]["threshold_pct"] for b in got] == ["50", "80", "100"]
        assert got[0]["rule"] == "budget:team"
        assert got[0]["project"] == "alerts"
        assert svc.num_alerts == 3

    def test_thresholds_alert_again_next_period(self, h: Harness, receiver: HttpReceiver) -> None:
        h.api(
            "POST",
            "/api/v1/budgets",
            json={
                "name": "d",
                "limit_usd": 1.0,
                "period": "day",
                "thresholds": [1.0],
                "notify": ["hook"],
            },
        )
        _spend(h, 1.5)
        h.state.budgets.tick()
        h.clock.advance(days=1)
        _spend(h, 1.5)
        h.state.budgets.tick()
        h.state.budgets.tick()
        wait_for(lambda: len(receiver.bodies("/hook")) == 2)


def test_budgets_file_is_read_only(tmp_path: Path) -> None:
    f = tmp_path / "budgets.yaml"
    f.write_text("budgets:\n  - name: org\n    limit_usd: 5\n    hard: true\n")
    for hh in harness(tmp_path, budgets_file=f):
        got = hh.api("GET", "/api/v1/budgets").json()["data"]
        assert [(b["name"], b["source"], b["hard"]) for b in got] == [("org", "file", True)]
        assert hh.api("PUT", "/api/v1/budgets/org", json={"limit_usd": 1}).status_code == 409
        assert hh.api("DELETE", "/api/v1/budgets/org").status_code == 409


def test_budgets_file_with_an_unknown_channel_fails_start(tmp_path: Path) -> None:
    from sightline.errors import ConfigError

    f = tmp_path / "budgets.yaml"
    f.write_text("budgets:\n  - name: org\n    limit_usd: 5\n    notify: [finance-slack]\n")
    with pytest.raises(ConfigError, match="unknown channel.*finance-slack"):
        for _ in harness(tmp_path, budgets_file=f):
            pass


def test_bad_budgets_file_fails_start(tmp_path: Path) -> None:
    from sightline.errors import ConfigError

    f = tmp_path / "budgets.yaml"
    f.write_text("budgets:\n  - name: org\n")
    with pytest.raises(ConfigError, match="limit_usd"):
        for _ in harness(tmp_path, budgets_file=f):
            pass


def test_a_budget_dropped_from_the_budgets_file_goes(tmp_path: Path) -> None:
    f = tmp_path / "budgets.yaml"
    f.write_text("budgets:\n  - name: org\n    limit_usd: 0.01\n    hard: true\n")
    for hh in harness(tmp_path, budgets_file=f):
        assert [b["name"] for b in hh.api("GET", "/api/v1/budgets").json()["data"]] == ["org"]
    # restarted with another file: its budgets only, no longer the old hard limit
    f.write_text("budgets:\n  - name: team\n    limit_usd: 5\n")
    for hh in harness(tmp_path, budgets_file=f):
        got = hh.api("GET", "/api/v1/budgets").json()["data"]
        assert [(b["name"], b["source"]) for b in got] == [("team", "file")]
        assert hh.api("GET", "/api/v1/budgets/check").json()["allowed"]
    # restarted without a file: its former budgets are the API's to delete
    for hh in harness(tmp_path):
        assert hh.api("PUT", "/api/v1/budgets/team", json={"limit_usd": 9}).status_code == 200
        assert hh.api("DELETE", "/api/v1/budgets/team").status_code == 200
        assert hh.api("GET", "/api/v1/budgets").json()["data"] == []


def test_a_crash_right_after_a_threshold_is_marked_does_not_lose_its_notification(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark and its deliveries are committed together: a process that dies right after,
    before queueing anything, sends the notification at its next start (the deliveries were
    stored after the mark: the threshold stayed marked and was never announced)."""
    yaml = f"channels:\n  hook:\n    type: webhook\n    url: {receiver.url}/hook\n"
    gen = harness(tmp_path, alerts_yaml=yaml)
    h = next(gen)
    try:
        body = {"name": "team", "limit_usd": 1.0, "notify": ["hook"]}
        assert h.api("POST", "/api/v1/budgets", json=body).status_code == 201
        _spend(h, 0.6)
        monkeypatch.setattr(h.store, "mark_budget_alert", then_crash(h.store.mark_budget_alert))
        with pytest.raises(Crash):
            h.state.budgets.tick()
        monkeypatch.undo()
    finally:
        gen.close()
    assert receiver.bodies("/hook") == []
    gen = harness(tmp_path, alerts_yaml=yaml)  # the next start, on the same data directory
    h = next(gen)
    try:
        wait_for(lambda: len(receiver.bodies("/hook")) == 1)
        [got] = receiver.bodies("/hook")
        assert got["rule"] == "budget:team" and got["labels"]["threshold_pct"] == "50"
        h.state.budgets.tick()  # marked: not announced twice
        h.clock.advance(seconds=1)
        h.state.budgets.tick()
        assert len(receiver.bodies("/hook")) == 1
    finally:
        gen.close()
