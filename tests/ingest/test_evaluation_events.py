"""OpenTelemetry GenAI ``gen_ai.evaluation.result`` events become scores."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from _helpers import Server
from sightline.ingest._evaluations import evaluation, to_scores
from sightline.ingest._service import _prepare, _prepare_signal
from sightline.redact import Redactor

T0 = 1_764_000_000_000_000_000


def _attrs(**a: Any) -> list[dict[str, Any]]:
    def v(x: Any) -> dict[str, Any]:
        if isinstance(x, bool):
            return {"boolValue": x}
        if isinstance(x, int):
            return {"intValue": str(x)}
        if isinstance(x, float):
            return {"doubleValue": x}
        return {"stringValue": x}

    return [{"key": k, "value": v(x)} for k, x in a.items()]


def _span(trace_id: str, span_id: str, parent: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"traceId": trace_id, "spanId": span_id, "name": "chat", **kw,
            **({"parentSpanId": parent} if parent else {}),
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**9)}  # fmt: skip


def _body(spans: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def _eval_event(t: int, **a: Any) -> dict[str, Any]:
    return {"name": "gen_ai.evaluation.result", "timeUnixNano": str(t), "attributes": _attrs(**a)}


def test_span_events_and_evaluation_spans_become_scores() -> None:
    tid, llm, judge = "ab" * 16, "01" * 8, "02" * 8
    spans = [
        _span(tid, llm, attributes=_attrs(**{"gen_ai.operation.name": "chat"}), events=[
            _eval_event(T0 + 5, **{"gen_ai.evaluation.name": "Relevance",
                                   "gen_ai.evaluation.score.value": 4.0,
                                   "gen_ai.evaluation.score.label": "relevant",
                                   "gen_ai.evaluation.explanation": "answers the question",
                                   "gen_ai.response.id": "chatcmpl-1"}),
            _eval_event(T0 + 6, **{"gen_ai.evaluation.name": "groundedness",
                                   "gen_ai.evaluation.score.label": "fail"}),
            _eval_event(T0 + 7, **{"gen_ai.evaluation.name": "no verdict"}),  # nothing to keep
            {"name": "other", "timeUnixNano": str(T0), "attributes": _attrs(x=1)},
        ]),
        # a tracing bridge's evaluation span: it judges its parent
        _span(tid, judge, parent=llm, attributes=_attrs(**{
            "gen_ai.evaluation.name": "coherence", "gen_ai.evaluation.score.value": 0.25})),
    ]  # fmt: skip
    table, res = _prepare("otlp_json", _body(spans), None, "p", 1 << 24)
    assert table is not None and table.num_rows == 2
    got = {s["name"]: s for s in res.scores}
    assert set(got) == {"Relevance", "groundedness", "coherence"}
    rel = got["Relevance"]
    assert (rel["trace_id"], rel["span_id"], rel["time_ns"]) == (tid, llm, T0 + 5)
    assert (rel["value"], rel["label"], rel["passed"]) == (4.0, "relevant", True)
    assert rel["explanation"] == "answers the question"
    assert rel["details"] == {"gen_ai.response.id": "chatcmpl-1"}
    assert (got["groundedness"]["value"], got["groundedness"]["passed"]) == (None, False)
    assert (got["coherence"]["span_id"], got["coherence"]["value"]) == (llm, 0.25)


def test_odd_values_give_no_score_or_a_partial_one() -> None:
    assert evaluation("t", "s", T0, {"gen_ai.evaluation.name": ["x"], "x": 1}) is None
    assert evaluation("t", "s", T0, {"gen_ai.evaluation.name": " ",
                                     "gen_ai.evaluation.score.value": 1.0}) is None  # fmt: skip
    odd = evaluation("t", "s", T0, {"gen_ai.evaluation.name": "n" * 500,
                                    "gen_ai.evaluation.score.value": float("nan"),
                                    "gen_ai.evaluation.score.label": 7})  # fmt: skip
    assert odd is not None
    assert (len(odd["name"]), odd["value"], odd["label"]) == (128, None, "7")
    assert evaluation("t", "s", T0, {"gen_ai.evaluation.name": "b",
                                     "gen_ai.evaluation.score.value": True}) is None  # fmt: skip


def test_the_explanation_is_redacted_by_the_projects_policy() -> None:
    spans = [_span("cd" * 16, "03" * 8, events=[_eval_event(T0, **{
        "gen_ai.evaluation.name": "tone",
        "gen_ai.evaluation.explanation": "fine, mail jane.doe@example.com"})])]  # fmt: skip
    _, res = _prepare("otlp_json", _body(spans), None, "p", 1 << 24, Redactor())
    assert res.scores[0]["explanation"] == "fine, mail <EMAIL>"


def test_score_ids_are_the_same_for_the_same_event() -> None:
    one = evaluation("t" * 32, "s" * 16, T0, {"gen_ai.evaluation.name": "r",
                                              "gen_ai.evaluation.score.value": 1.0})  # fmt: skip
    assert one is not None
    a, b = to_scores("p", [one], 1), to_scores("p", [one], 2)
    assert a == b and a[0].score_id.startswith("otel-")
    assert to_scores("q", [one], 1)[0].score_id != a[0].score_id
    # an event time no store can hold: the time it arrived
    one["time_ns"] = 5
    assert to_scores("p", [one], T0)[0].created_at.timestamp() == pytest.approx(T0 / 1e9)


def test_log_records_in_the_evaluated_spans_context() -> None:
    req = ExportLogsServiceRequest()
    recs = req.resource_logs.add().scope_logs.add().log_records
    for i, (name, tid) in enumerate([("gen_ai.evaluation.result", b"\x0a" * 16),
                                     ("gen_ai.evaluation.result", b""),  # no span: no score
                                     ("gen_ai.user.message", b"\x0a" * 16)]):  # fmt: skip
        r = recs.add(time_unix_nano=T0 + i, event_name=name, trace_id=tid)
        if tid:
            r.span_id = b"\x0b" * 8
        r.attributes.add(key="gen_ai.evaluation.name").value.string_value = "helpfulness"
        r.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.9
    table, res = _prepare_signal("logs", "otlp_proto", req.SerializeToString(), None, "p", 1 << 24)
    assert table is not None and table.num_rows == 3  # the records are stored as logs too
    [score] = res.scores
    assert (score["trace_id"], score["span_id"], score["value"]) == ("0a" * 16, "0b" * 8, 0.9)


def test_scores_are_stored_once_and_shown_with_their_span(server: Server) -> None:
    tid, llm = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time_ns()
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    span = _span(tid, llm, attributes=_attrs(**chat))
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(now - 10**9), str(now)
    span["events"] = [_eval_event(now, **{"gen_ai.evaluation.name": "relevance_ext",
                                          "gen_ai.evaluation.score.value": 0.75})]  # fmt: skip
    logs = ExportLogsServiceRequest()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add(
        time_unix_nano=now, event_name="gen_ai.evaluation.result",
        trace_id=bytes.fromhex(tid), span_id=bytes.fromhex(llm))  # fmt: skip
    rec.attributes.add(key="gen_ai.evaluation.name").value.string_value = "toxicity_ext"
    rec.attributes.add(key="gen_ai.evaluation.score.label").value.string_value = "pass"
    with server.client() as c:
        for _ in range(2):  # an exporter's retry: stored once
            r = c.post("/v1/traces", content=_body([span]),
                       headers={"content-type": "application/json"})  # fmt: skip
            assert r.status_code == 200, r.text
            r = c.post("/v1/logs", content=logs.SerializeToString(),
                       headers={"content-type": "application/x-protobuf"})  # fmt: skip
            assert r.status_code == 200, r.text
        tree = c.get(f"/api/v1/traces/{tid}").json()
        listed = c.get("/api/v1/scores", params={"name": "relevance_ext"}).json()["data"]
    got = sorted((s["name"], s["value"], s["label"], s["passed"], s["source"], s["span_id"])
                 for s in tree["scores"])  # fmt: skip
    assert got == [("relevance_ext", 0.75, None, None, "evaluator", llm),
                   ("toxicity_ext", None, "pass", True, "evaluator", llm)]  # fmt: skip
    assert [s["name"] for s in tree["spans"][0]["scores"]] != []
    assert [s["trace_id"] for s in listed] == [tid]


def test_an_evaluator_named_as_its_emitter_names_it_can_be_validated_by_people(
    server: Server,
) -> None:
    """OpenTelemetry evaluation names are kept as sent (``Answer Relevancy``): a human label of
    that name is accepted, listed by name and paired with the evaluator's verdict."""
    tid, llm = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.time_ns()
    name = "Answer Relevancy/v2 " + "x" * 100  # 120 characters, spaces, capitals, a slash
    span = _span(tid, llm, attributes=_attrs(**{"gen_ai.operation.name": "chat"}))
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(now - 10**9), str(now)
    span["events"] = [_eval_event(now, **{"gen_ai.evaluation.name": name,
                                          "gen_ai.evaluation.score.label": "fail"})]  # fmt: skip
    with server.client() as c:
        r = c.post(
            "/v1/traces", content=_body([span]), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, r.text
        r = c.post("/api/v1/scores", json={"span_id": llm, "name": name, "label": "incorrect"})
        assert r.status_code == 201, r.text
        listed = c.get("/api/v1/scores", params={"name": name}).json()
        agreement = c.get("/api/v1/evaluators/agreement").json()["data"]
        bad = c.post("/api/v1/scores", json={"span_id": llm, "name": "a\nb", "label": "correct"})
    assert sorted(s["source"] for s in listed["data"]) == ["evaluator", "human"], listed
    [mine] = [a for a in agreement if a["name"] == name]
    assert (mine["num_pairs"], mine["true_fail"], mine["accuracy"]) == (1, 1, 1.0)
    assert bad.status_code == 400  # control characters are still refused


def test_a_log_record_without_a_time_gives_the_same_score_id_on_a_retry() -> None:
    # the record's time defaults to the arrival time, which a retry changes: the score id
    # must not (it is what makes a retried request store each score once)
    req = ExportLogsServiceRequest()
    r = (
        req.resource_logs.add()
        .scope_logs.add()
        .log_records.add(
            event_name="gen_ai.evaluation.result", trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8
        )
    )
    r.attributes.add(key="gen_ai.evaluation.name").value.string_value = "helpfulness"
    r.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.9
    body = req.SerializeToString()
    ids = set()
    for _ in range(2):
        _, res = _prepare_signal("logs", "otlp_proto", body, None, "p", 1 << 24)
        ids.add(to_scores("p", res.scores, time.time_ns())[0].score_id)
        time.sleep(0.002)
    assert len(ids) == 1


def _service(found: list[Any], fail: bool) -> Any:
    from sightline.errors import StoreError
    from sightline.ingest._service import IngestService

    class Writer:
        def expect(self) -> None: ...
        def unexpect(self) -> None: ...

        def submit(self, table: Any, n: int, **kw: Any) -> Any:
            import concurrent.futures

            f: concurrent.futures.Future[None] = concurrent.futures.Future()
            f.set_result(None)
            return f

    def scores(s: Any, *, since: Any) -> None:  # as DuckDBStore.append_scores_once
        if fail:
            raise StoreError("score insert failed: disk full")
        found.extend(s)
        assert since < min(x.created_at for x in s)

    return IngestService(Writer(), workers=0, scores=scores)  # type: ignore[arg-type]


def test_a_score_store_failure_after_the_spans_commit_is_retryable() -> None:
    # the spans are stored once however often they are sent: a 503 (which exporters retry)
    # brings the scores again; a 500 (which they do not) lost them
    from sightline.errors import Overloaded

    spans = [_span("cd" * 16, "03" * 8, events=[_eval_event(T0, **{
        "gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 1.0})])]  # fmt: skip
    svc = _service([], fail=True)
    with pytest.raises(Overloaded):
        svc.ingest_sync("otlp_json", _body(spans), encoding=None, project_id="p")


def test_a_score_store_failure_after_the_logs_commit_is_retryable() -> None:
    # the logs request's retry is recognised by its key (tests/e2e/test_otel_signals.py
    # TestResentBatches): a 503 brings the scores again, a 200 would lose them
    from sightline.errors import Overloaded

    req = ExportLogsServiceRequest()
    r = req.resource_logs.add().scope_logs.add().log_records.add(
        time_unix_nano=T0, event_name="gen_ai.evaluation.result",
        trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8)  # fmt: skip
    r.attributes.add(key="gen_ai.evaluation.name").value.string_value = "helpfulness"
    r.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.9
    with pytest.raises(Overloaded):
        _service([], fail=True).ingest_signal_sync("logs", req.SerializeToString(), project_id="p")
    stored: list[Any] = []
    res = _service(stored, fail=False).ingest_signal_sync(
        "logs", req.SerializeToString(), project_id="p"
    )
    assert res.accepted == 1 and [s.name for s in stored] == ["helpfulness"]


def test_at_most_1000_evaluations_are_kept_from_one_request() -> None:
    ev = {"gen_ai.evaluation.name": "r", "gen_ai.evaluation.score.value": 1.0}
    spans = [_span("ef" * 16, f"{i + 1:016x}", events=[_eval_event(T0 + j, **ev)
                                                       for j in range(201)])
             for i in range(5)]  # fmt: skip
    _, res = _prepare("otlp_json", _body(spans), None, "p", 1 << 24)
    assert len(res.scores) == 1000 and res.repaired["evaluations_dropped"] == 5
