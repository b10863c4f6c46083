"""Scores, human labels, agreement, score metrics, datasets and eval lag through the API
(in-process app with its evaluation runner, real DuckDB store)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from _evalspans import insert, rag_trace
from sightline.cli import main
from sightline.config import Settings
from sightline.model import Score
from sightline.server import create_app
from sightline.server._auth import create_project_with_key
from sightline.store import DuckDBStore

KEY = "sl_evals_api_key_0123456789"
P = "evalsapi"
Q = "How many requests per minute does the API allow?"
DOCS = [
    "The API allows 600 requests per minute per key; more get HTTP 429.",
    "Invoices are emailed on the first day of each month.",
]


@pytest.fixture(scope="module")
def app_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, DuckDBStore, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("evalsapi")
    store = DuckDBStore(tmp / "db.duckdb")
    settings = Settings(
        data_dir=tmp,
        otlp_grpc_port=0,
        ingest_workers=0,
        init_project=P,
        init_api_key=KEY,
        evaluators=["relevance", "context_relevance"],
        eval_grace_s=0.0,
        eval_interval_s=0.05,
    )
    app = create_app(settings, store=store)
    with TestClient(app, headers={"authorization": f"Bearer {KEY}"}) as client:
        other_key = create_project_with_key(store, "other")
        good = rag_trace(
            P, Q, DOCS, "The API allows 600 requests per minute per key.", model="gpt-4o"
        )
        bad = rag_trace(P, Q, DOCS, "Bananas are a good source of potassium.", model="gpt-4o-mini")
        insert(store, good + bad)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = client.get("/api/v1/scores", params={"source": "evaluator"})
            if len(r.json()["data"]) >= 4:
                break
            time.sleep(0.1)
        yield client, store, {"good": good, "bad": bad, "other_key": other_key}


def _llm(trace: list[dict[str, Any]]) -> dict[str, Any]:
    return next(s for s in trace if s["kind"] == "llm")


class TestScores:
    def test_the_runner_scored_the_llm_spans(self, app_env: Any) -> None:
        client, _, t = app_env
        data = client.get("/api/v1/scores", params={"name": "relevance"}).json()["data"]
        by_span = {s["span_id"]: s for s in data}
        assert by_span[_llm(t["good"])["span_id"]]["label"] == "relevant"
        assert by_span[_llm(t["bad"])["span_id"]]["label"] == "irrelevant"
        assert all(s["source"] == "evaluator" and s["evaluator_version"] == "2" for s in data)
        r = client.get("/api/v1/metrics", params={"name": "relevance", "group_by": "model"})
        rel = {x["group"]["model"]: x["points"][0]["value"] for x in r.json()["series"]}
        assert rel["gpt-4o"] >= 0.7 > rel["gpt-4o-mini"]

    def test_filters_and_cursor_pagination(self, app_env: Any) -> None:
        client, _, t = app_env
        tid = t["good"][0]["trace_id"]
        data = client.get("/api/v1/scores", params={"trace_id": tid}).json()["data"]
        assert {s["name"] for s in data} == {"relevance", "context_relevance"}
        assert all(s["trace_id"] == tid for s in data)
        sid = _llm(t["bad"])["span_id"]
        data = client.get("/api/v1/scores", params={"span_id": sid, "label": "irrelevant"}).json()
        assert [s["name"] for s in data["data"]] == ["relevance"]
        seen = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1, "source": "evaluator", "trace_id": tid}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/scores", params=params).json()
            seen += [s["score_id"] for s in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 2
        future = client.get("/api/v1/scores", params={"from": "2999-01-01T00:00:00Z"}).json()
        assert future["data"] == []

    def test_scores_are_project_scoped(self, app_env: Any) -> None:
        client, _, t = app_env
        r = client.get("/api/v1/scores", headers={"authorization": f"Bearer {t['other_key']}"})
        assert r.status_code == 200 and r.json()["data"] == []

    @pytest.mark.parametrize(
        ("params", "fragment"),
        [
            ({"source": "robot"}, "source: expected one of"),
            ({"cursor": "!!!"}, "invalid cursor"),
            ({"trace_id": "xyz"}, "trace_id"),
            ({"limit": 0}, "limit"),
            ({"from": "yesterday"}, "from: expected epoch seconds or ISO-8601"),
        ],
    )
    def test_bad_filters_are_400(self, app_env: Any, params: dict[str, Any], fragment: str) -> None:
        client, _, _ = app_env
        r = client.get("/api/v1/scores", params=params)
        assert r.status_code == 400 and fragment in r.json()["error"]["message"]

    def test_span_items_and_trace_spans_carry_their_scores(self, app_env: Any) -> None:
        client, _, t = app_env
        tid = t["good"][0]["trace_id"]
        spans = client.get("/api/v1/spans", params={"trace_id": tid}).json()["data"]
        llm = next(s for s in spans if s["kind"] == "llm")
        assert {s["name"] for s in llm["scores"]} == {"relevance", "context_relevance"}
        assert all(s["scores"] == [] for s in spans if s["kind"] != "llm")
        tree = client.get(f"/api/v1/traces/{tid}").json()
        [root] = tree["spans"]
        node = next(c for c in root["children"] if c["kind"] == "llm")
        assert {s["name"] for s in node["scores"]} == {"relevance", "context_relevance"}
        assert root["scores"] == []


class TestHumanLabelsAndAgreement:
    def test_label_validation(self, app_env: Any) -> None:
        client, _, t = app_env
        sid = _llm(t["good"])["span_id"]
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"span_id": sid}, 400, "give a label"),
            ({"span_id": sid, "label": "meh"}, 400, "label"),
            ({"span_id": sid, "value": 1.5}, 400, "value"),
            ({"span_id": "00000000000000ff", "label": "correct"}, 404, "not found"),
            ({"label": "correct"}, 400, "give trace_id or span_id"),
            ({"span_id": sid, "trace_id": "0" * 32, "label": "correct"}, 400, "belongs to"),
            ({"span_id": sid, "label": "correct", "bogus": 1}, 400, "bogus"),
        ]
        for body, status, fragment in cases:
            r = client.post("/api/v1/scores", json=body)
            assert r.status_code == status, (body, r.text)
            assert fragment in r.json()["error"]["message"], (body, r.text)

    def test_human_labels_and_agreement_with_the_evaluator(self, app_env: Any) -> None:
        client, _, t = app_env
        good, bad = _llm(t["good"])["span_id"], _llm(t["bad"])["span_id"]
        # people agree with relevance on the good answer, and disagree on the bad one
        r = client.post(
            "/api/v1/scores",
            json={"span_id": good, "name": "relevance", "label": "correct", "user_id": "ann"},
        )
        assert r.status_code == 201
        s = r.json()
        assert s["source"] == "human" and s["passed"] is True and s["value"] == 1.0
        assert s["trace_id"] == t["good"][0]["trace_id"]
        r = client.post("/api/v1/scores", json={"span_id": bad, "name": "relevance", "value": 0.8})
        assert r.status_code == 201 and r.json()["passed"] is True
        r = client.post(
            "/api/v1/scores",
            json={"span_id": bad, "name": "context_relevance", "label": "off-topic"},
        )
        assert r.status_code == 201 and r.json()["passed"] is False
        agg = {a["name"]: a for a in client.get("/api/v1/evaluators/agreement").json()["data"]}
        rel = agg["relevance"]
        assert rel["num_pairs"] == 2 and rel["accuracy"] == 0.5
        assert rel["true_pass"] == 1 and rel["false_fail"] == 1
        assert rel["kappa"] == 0.0  # people always said pass: agreement is at chance
        ctx = agg["context_relevance"]
        assert ctx["num_pairs"] == 1 and ctx["false_pass"] == 1 and ctx["accuracy"] == 0.0
        data = client.get("/api/v1/scores", params={"source": "human"}).json()["data"]
        assert len(data) == 3

    def test_a_span_labelled_and_its_trace_labelled_is_one_pair(self, app_env: Any) -> None:
        client, store, _ = app_env
        trace = rag_trace(P, "Who signs invoices?", DOCS, "The finance team.", model="own-model")
        insert(store, trace)
        llm = _llm(trace)
        tid, sid = llm["trace_id"], llm["span_id"]
        # an evaluator of its own (as one reporting over OpenTelemetry would) passed the answer
        store.add_scores(
            [
                Score(
                    project_id=P,
                    score_id=secrets.token_hex(8),
                    trace_id=tid,
                    span_id=sid,
                    name="own_judge",
                    value=0.9,
                    passed=True,
                    source="evaluator",
                    evaluator="own",
                    created_at=datetime.now(UTC),
                )
            ]
        )
        # a reviewer failed the whole trace, another passed this very span
        for body in (
            {"trace_id": tid, "name": "own_judge", "label": "incorrect"},
            {"span_id": sid, "name": "own_judge", "label": "correct"},
        ):
            assert client.post("/api/v1/scores", json=body).status_code == 201
        agg = {a["name"]: a for a in client.get("/api/v1/evaluators/agreement").json()["data"]}
        own = agg["own_judge"]
        # one span, one human verdict: the label on the span, not both
        assert own["num_pairs"] == 1, own
        assert (own["true_pass"], own["false_pass"], own["accuracy"]) == (1, 0, 1.0)

    def test_evaluators_listing(self, app_env: Any) -> None:
        client, _, _ = app_env
        body = client.get("/api/v1/evaluators").json()
        assert {"relevance", "context_relevance", "llm_judge"} <= set(body["registered"])
        assert [e["name"] for e in body["online"]] == ["relevance", "context_relevance"]
        assert body["eval_lag_s"] >= 0.0


def _score(
    trace_id: str,
    span_id: str | None,
    name: str,
    value: float | None,
    label: str,
    passed: bool | None,
    source: str = "evaluator",
) -> Score:
    return Score(
        project_id=P,
        score_id=secrets.token_hex(8),
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        value=value,
        label=label,
        passed=passed,
        source=source,  # type: ignore[arg-type]
        evaluator=name if source == "evaluator" else None,
        created_at=datetime.now(UTC),
    )


class TestScoreMetrics:
    def test_hallucination_rate_and_friends_from_scores(self, app_env: Any) -> None:
        client, store, _ = app_env
        # traces of their own (models m-good, m-bad), so other tests' scores do not mix in
        g = rag_trace(P, Q, DOCS, "The API allows 600 requests per minute.", model="m-good")
        b = rag_trace(P, Q, DOCS, "The office is on the Moon.", model="m-bad")
        for x in g + b:
            x["feature"] = "metrics-test"
        insert(store, g + b)
        f = {"feature": "metrics-test"}
        gs, bs = _llm(g)["span_id"], _llm(b)["span_id"]
        store.add_scores(
            [
                _score(g[0]["trace_id"], gs, "faithfulness", 0.9, "faithful", True),
                _score(b[0]["trace_id"], bs, "faithfulness", 0.1, "hallucination", False),
                # a failed evaluation counts nowhere
                _score(b[0]["trace_id"], bs, "faithfulness", None, "failed", None),
                _score(g[0]["trace_id"], gs, "toxicity", 1.0, "clean", True),
                _score(b[0]["trace_id"], bs, "toxicity", 0.6, "toxic", False),
                _score(g[0]["trace_id"], gs, "format", 1.0, "compliant", True),
                _score(b[0]["trace_id"], bs, "format", 0.0, "invalid_json", False),
                _score(b[0]["trace_id"], bs, "prompt_injection", 0.0, "injection", False),
                _score(b[0]["trace_id"], bs, "pii_leak", 1.0, "clean", True),
                _score(b[0]["trace_id"], bs, "refusal", 0.0, "refusal", False),
                # end-user feedback is trace-level: it counts on the trace's LLM span
                _score(g[0]["trace_id"], None, "feedback", 1.0, "positive", True, "user"),
                _score(b[0]["trace_id"], None, "feedback", -1.0, "negative", False, "user"),
            ]
        )

        def value(name: str, **params: Any) -> Any:
            r = client.get("/api/v1/metrics", params={"name": name, **f, **params})
            assert r.status_code == 200, r.text
            return r.json()

        def one(name: str, **params: Any) -> float:
            [s] = value(name, **params)["series"]
            return float(s["points"][0]["value"])

        assert one("hallucination_rate") == 0.5
        assert one("faithfulness") == pytest.approx(0.5)
        assert one("toxicity") == pytest.approx(0.2)  # mean of 1 - score: (0 + 0.4) / 2
        assert one("format_compliance") == 0.5
        assert one("injection_rate") == 1.0
        assert one("pii_rate") == 0.0
        assert one("refusal_rate") == 1.0
        assert one("feedback_positive_rate") == 0.5
        by_model = {
            s["group"]["model"]: s["points"][0]["value"]
            for s in value("hallucination_rate", group_by="model")["series"]
        }
        assert by_model == {"m-good": 0.0, "m-bad": 1.0}
        fb = {
            s["group"]["model"]: s["points"][0]["value"]
            for s in value("feedback_positive_rate", group_by="model")["series"]
        }
        assert fb == {"m-good": 1.0, "m-bad": 0.0}
        assert one("hallucination_rate", model="m-bad") == 1.0
        assert one("faithfulness", agg="p50") == pytest.approx(0.5)
        assert value("hallucination_rate", model="nothing")["series"] == []
        r = client.get("/api/v1/metrics", params={"name": "hallucination_rate", "agg": "avg"})
        assert r.status_code == 400

    def test_eval_lag_is_a_metric_and_a_prometheus_gauge(self, app_env: Any) -> None:
        client, _, _ = app_env
        r = client.get("/api/v1/metrics", params={"name": "eval_lag_s"})
        assert r.status_code == 200
        [s] = r.json()["series"]
        assert s["points"][0]["value"] >= 0.0
        prom = client.get("/metrics").text
        assert re.search(r"^sightline_eval_lag_seconds \d", prom, re.M)
        m = re.search(r'^sightline_eval_scores_total\{evaluator="relevance"\} (\d+)', prom, re.M)
        assert m and int(m.group(1)) >= 2
        # nothing skipped: this server keeps up
        assert re.search(r"^sightline_eval_shed_spans_total 0\.0$", prom, re.M), prom


class TestDatasets:
    def test_save_list_download_and_run_offline(self, app_env: Any, tmp_path: Path) -> None:
        client, _, t = app_env
        r = client.post(
            "/api/v1/datasets", json={"name": "api answers", "filter": {"model": "gpt-4o"}}
        )
        assert r.status_code == 201, r.text
        ds = r.json()
        assert ds["num_rows"] == 1 and ds["filter"] == {"kind": "llm", "model": "gpt-4o"}
        listed = client.get("/api/v1/datasets").json()["data"]
        assert [d["dataset_id"] for d in listed] == [ds["dataset_id"]]
        assert client.get(f"/api/v1/datasets/{ds['dataset_id']}").json()["name"] == "api answers"
        r = client.get(f"/api/v1/datasets/{ds['dataset_id']}/rows")
        assert r.headers["content-type"] == "application/x-ndjson"
        [row] = [json.loads(x) for x in r.text.splitlines()]
        llm = _llm(t["good"])
        assert row["id"] == f"{llm['trace_id']}:{llm['span_id']}"
        assert row["question"] == Q and row["contexts"] == DOCS
        assert row["metadata"]["model"] == "gpt-4o"
        path = tmp_path / "ds.jsonl"
        path.write_text(r.text)
        res = CliRunner().invoke(
            main,
            [
                "eval",
                "run",
                str(path),
                "--evaluators",
                "relevance",
                "--out",
                str(tmp_path / "out.jsonl"),
            ],
        )
        assert res.exit_code == 0, res.output
        [out] = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert out["scores"]["relevance"]["label"] == "relevant"

    @pytest.mark.parametrize(
        ("body", "status", "fragment"),
        [
            ({"name": "x", "filter": {"kind": "robot"}}, 400, "filter.kind"),
            ({"name": "x", "filter": {"status": "meh"}}, 400, "filter.status"),
            ({"name": "", "filter": {}}, 400, "name"),
            ({"name": "x", "limit": 0}, 400, "limit"),
            ({"name": "x", "filter": {"colour": "red"}}, 400, "colour"),
            (
                {"name": "x", "filter": {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01"}},
                400,
                "filter.from must be before filter.to",
            ),
        ],
    )
    def test_bad_dataset_requests(
        self, app_env: Any, body: dict[str, Any], status: int, fragment: str
    ) -> None:
        client, _, _ = app_env
        r = client.post("/api/v1/datasets", json=body)
        assert r.status_code == status and fragment in r.json()["error"]["message"], r.text

    def test_unknown_dataset_is_404(self, app_env: Any) -> None:
        client, _, _ = app_env
        assert client.get("/api/v1/datasets/0123456789abcdef").status_code == 404
        assert client.get("/api/v1/datasets/0123456789abcdef/rows").status_code == 404


class TestEvalSettings:
    def test_env_lists_and_rates(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SIGHTLINE_EVALUATORS", "relevance, format")
        monkeypatch.setenv("SIGHTLINE_EVAL_SAMPLE_RATES", "relevance=0.5,llm_judge=0.05")
        monkeypatch.setenv("SIGHTLINE_EVAL_KINDS", "llm,agent")
        monkeypatch.setenv("SIGHTLINE_EVAL_OPTIONS", '{"format": {"json": true}}')
        s = Settings()
        assert s.evaluators == ["relevance", "format"]
        assert s.eval_sample_rates == {"relevance": 0.5, "llm_judge": 0.05}
        assert s.eval_kinds == ["llm", "agent"]
        assert s.eval_options == {"format": {"json": True}}

    @pytest.mark.parametrize(
        ("env", "value"),
        [
            ("SIGHTLINE_EVAL_SAMPLE_RATES", "relevance"),
            ("SIGHTLINE_EVAL_SAMPLE_RATES", "relevance=2"),
            ("SIGHTLINE_EVAL_SAMPLE_RATE", "-0.1"),
            ("SIGHTLINE_EVAL_OPTIONS", "{not json"),
            ("SIGHTLINE_EVAL_MAX_LAG_S", "-1"),
            ("SIGHTLINE_EVAL_MAX_LAG_S", "soon"),
        ],
    )
    def test_bad_settings_are_rejected(
        self, monkeypatch: pytest.MonkeyPatch, env: str, value: str
    ) -> None:
        from pydantic import ValidationError

        monkeypatch.setenv(env, value)
        with pytest.raises((ValidationError, ValueError)):
            Settings()

    @pytest.mark.parametrize(("env", "bound"), [(None, 600.0), ("30", 30.0), ("0", None)])
    def test_the_lag_bound_reaches_the_runner(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str | None, bound: float | None
    ) -> None:
        from sightline.server._evals import build_runner, load_online_evaluators

        if env is not None:
            monkeypatch.setenv("SIGHTLINE_EVAL_MAX_LAG_S", env)
        settings = Settings(data_dir=tmp_path, eval_process=False)
        store = DuckDBStore(tmp_path / "db.duckdb")
        try:
            runner = build_runner(settings, store, load_online_evaluators(settings)[:1])
            assert runner is not None and runner.options.max_lag_s == bound
        finally:
            store.close()

    def test_over_the_lag_bound_the_server_scores_only_forced_spans_and_counts_the_rest(
        self, tmp_path: Path
    ) -> None:
        # a bound under the grace period: every span waits past it, so every span that is not
        # forced is skipped, deterministically
        store = DuckDBStore(tmp_path / "db.duckdb")
        settings = Settings(
            data_dir=tmp_path, otlp_grpc_port=0, ingest_workers=0, init_project=P,
            init_api_key=KEY, evaluators=["relevance"], eval_process=False,
            eval_grace_s=0.3, eval_interval_s=0.05, eval_max_lag_s=0.1,
        )  # fmt: skip
        app = create_app(settings, store=store)
        with TestClient(app, headers={"authorization": f"Bearer {KEY}"}) as client:
            plain = [rag_trace(P, Q, DOCS, f"The API allows 600 requests ({i}).") for i in range(3)]
            down = rag_trace(P, Q, DOCS, "Bananas are a good source of potassium.")
            store.add_scores([_score(down[0]["trace_id"], None, "feedback", -1.0, "negative",
                                     False, "user")])  # fmt: skip
            insert(store, [x for t in plain for x in t] + down)
            deadline = time.monotonic() + 30
            scored: set[str] = set()
            while time.monotonic() < deadline and down[0]["trace_id"] not in scored:
                r = client.get("/api/v1/scores", params={"name": "relevance", "limit": 100})
                scored = {x["trace_id"] for x in r.json()["data"]}
                time.sleep(0.1)
            assert scored == {down[0]["trace_id"]}  # the thumbs-down trace only
            prom = client.get("/metrics").text
            m = re.search(r"^sightline_eval_shed_spans_total (\S+)$", prom, re.M)
            assert m and float(m.group(1)) == 3.0, prom

    def test_while_ingestion_is_saturated_the_server_waits_to_evaluate(
        self, tmp_path: Path
    ) -> None:
        """``eval_yield_s``: the runner waits while every decode worker has a request."""
        import threading

        from _payload import llm_request

        class WriterGated(DuckDBStore):
            """The server's writer waits for ``gate``; the test's own inserts do not."""

            gate = threading.Event()
            entered = threading.Event()

            def insert_batches(self, batches: Any) -> int:
                if threading.current_thread().name == "sightline-writer":
                    self.entered.set()
                    self.gate.wait(30)
                return int(super().insert_batches(batches))

        store = WriterGated(tmp_path / "db.duckdb")
        settings = Settings(
            data_dir=tmp_path, otlp_grpc_port=0, ingest_workers=0, init_project=P,
            init_api_key=KEY, evaluators=["relevance"], eval_process=False,
            eval_grace_s=0.1, eval_interval_s=0.05, eval_yield_s=60,
        )  # fmt: skip
        app = create_app(settings, store=store)
        headers = {"authorization": f"Bearer {KEY}"}
        with TestClient(app, headers=headers) as client:
            answers: list[int] = []
            body = llm_request(2)[0].SerializeToString()
            sender = threading.Thread(
                target=lambda: answers.append(
                    client.post(
                        "/v1/traces",
                        content=body,
                        headers={"content-type": "application/x-protobuf"},
                    ).status_code
                )
            )
            sender.start()  # one request in flight fills the one decoder (ingest_workers=0)
            try:
                assert WriterGated.entered.wait(30)
                trace = rag_trace(P, Q, DOCS, "The API allows 600 requests per minute.")
                insert(store, trace)
                # the runner (once its models are loaded) waits, however long that takes here
                deadline, waited = time.monotonic() + 60, 0.0
                while waited < 1.0 and time.monotonic() < deadline:
                    prom = client.get("/metrics").text
                    m = re.search(r"^sightline_eval_yield_seconds_total (\S+)$", prom, re.M)
                    waited = float(m.group(1)) if m else 0.0
                    time.sleep(0.1)
                assert waited >= 1.0, prom  # a second past the grace period, and still waiting
                r = client.get("/api/v1/scores", params={"name": "relevance"})
                assert r.json()["data"] == []
            finally:
                WriterGated.gate.set()
                sender.join(30)
            assert answers == [200]
            deadline = time.monotonic() + 30
            scored: list[Any] = []
            while time.monotonic() < deadline and not scored:
                r = client.get("/api/v1/scores", params={"name": "relevance"})
                scored = [x for x in r.json()["data"] if x["trace_id"] == trace[0]["trace_id"]]
                time.sleep(0.1)
            assert scored, "the span was never scored once ingestion was idle again"

    def test_an_unknown_evaluator_stops_the_server_before_it_starts(self, tmp_path: Path) -> None:
        from sightline.errors import ConfigError

        with pytest.raises(ConfigError, match="unknown evaluator 'nope'"):
            create_app(Settings(data_dir=tmp_path, evaluators=["relevance", "nope"]))
        with pytest.raises(ConfigError, match="evaluator 'format': invalid options"):
            create_app(Settings(data_dir=tmp_path, eval_options={"format": {"regex": "("}}))

    def test_a_sample_rate_that_applies_to_nothing_stops_the_server(self, tmp_path: Path) -> None:
        """Rates are keyed by score name; one naming nothing was ignored (100 % sampled)."""
        from sightline.errors import ConfigError

        judge = {"llm_judge": {"name": "judge_tone", "rubric": "tone"}}
        with pytest.raises(ConfigError, match="'llm_judge' scores as 'judge_tone'"):
            create_app(
                Settings(
                    data_dir=tmp_path,
                    evaluators=["llm_judge"],
                    eval_options=judge,
                    eval_sample_rates={"llm_judge": 0.05},
                )
            )
        with pytest.raises(ConfigError, match="no evaluator is named 'relevence'"):
            create_app(
                Settings(
                    data_dir=tmp_path,
                    evaluators=["format"],
                    eval_options={"format": {"json": True}},
                    eval_sample_rates={"relevence": 0.1},
                )
            )
        ok = Settings(
            data_dir=tmp_path,
            evaluators=["llm_judge"],
            eval_options=judge,
            # its score name; and a registered evaluator that is not running
            eval_sample_rates={"judge_tone": 0.05, "relevance": 0.5},
        )
        from sightline.server._evals import load_online_evaluators

        assert [e.name for e in load_online_evaluators(ok)] == ["judge_tone"]

    def test_evaluation_can_be_turned_off(self, tmp_path: Path) -> None:
        app = create_app(
            Settings(
                data_dir=tmp_path,
                otlp_grpc_port=0,
                ingest_workers=0,
                eval_enabled=False,
                init_project="off",
                init_api_key=KEY + "off",
            )
        )
        with TestClient(app, headers={"authorization": f"Bearer {KEY}off"}) as c:
            body = c.get("/api/v1/evaluators").json()
            assert body["online"] == [] and body["eval_lag_s"] is None
            lag = c.get("/api/v1/metrics", params={"name": "eval_lag_s"}).json()
            assert lag["series"][0]["points"][0]["value"] is None
