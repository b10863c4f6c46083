"""The prompt registry through the API (in-process app, real DuckDB store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sightline.config import Settings
from sightline.server import create_app
from sightline.server._auth import hash_key
from sightline.store.base import ApiKey

KEY = "sl_prompts_api_key_0123456789"
INGEST = "sl_prompts_ingest_0123456789"
READ = "sl_prompts_read_key_0123456789"
P = "promptsapi"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("prompts")
    settings = Settings(
        data_dir=tmp,
        otlp_grpc_port=0,
        ingest_workers=0,
        init_project=P,
        init_api_key=KEY,
        eval_enabled=False,
        monitor_interval_s=0,
        drift_interval_s=0,
        retention_interval_s=0,
    )
    app = create_app(settings)
    with TestClient(app, headers={"authorization": f"Bearer {KEY}"}) as c:
        store = app.state.sightline.store
        from datetime import UTC, datetime

        for k, role in ((INGEST, "ingest"), (READ, "read")):
            store.add_api_key(ApiKey(hash_key(k), k[:10], P, role, datetime.now(UTC)))
        yield c


def _create(c: TestClient, **body: object) -> dict[str, object]:
    r = c.post("/api/v1/prompts", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


class TestVersions:
    def test_versions_are_numbered_per_name_and_keep_their_fields(self, client: TestClient) -> None:
        v1 = _create(
            client,
            name="support-answer",
            template="Answer: {{question}}",
            model="gpt-4o-mini",
            parameters={"temperature": 0.2},
            labels=["production"],
            author="ana",
            message="first",
        )
        v2 = _create(
            client,
            name="support-answer",
            template=[
                {"role": "system", "content": "Be brief, {{ name }}."},
                {"role": "user", "content": "{{question}}"},
            ],
            labels=["staging"],
            message="chat form",
        )
        other = _create(client, name="other-prompt", template="x")
        assert (v1["version"], v2["version"], other["version"]) == (1, 2, 1)
        assert v1["labels"] == ["production"] and v1["author"] == "ana"
        assert v1["parameters"] == {"temperature": 0.2} and v1["model"] == "gpt-4o-mini"
        assert v1["variables"] == ["question"] and v1["type"] == "text"
        assert v2["type"] == "chat" and v2["variables"] == ["name", "question"]
        assert v2["author"].startswith("key:")  # the key that made it

        r = client.get("/api/v1/prompts/support-answer", params={"label": "production"})
        assert r.json()["version"] == 1 and r.json()["message"] == "first"
        assert client.get("/api/v1/prompts/support-answer").json()["version"] == 2  # latest
        r = client.get("/api/v1/prompts/support-answer", params={"version": 2})
        assert r.json()["template"][1] == {"role": "user", "content": "{{question}}"}
        vs = client.get("/api/v1/prompts/support-answer/versions").json()["data"]
        assert [(v["version"], v["labels"]) for v in vs] == [(1, ["production"]), (2, ["staging"])]
        listed = {p["name"]: p for p in client.get("/api/v1/prompts").json()["data"]}
        assert listed["support-answer"]["labels"] == {"production": 1, "staging": 2}
        assert listed["support-answer"]["latest_version"] == 2

    def test_moving_a_label_changes_what_it_resolves_to(self, client: TestClient) -> None:
        _create(client, name="mover", template="one", labels=["production"])
        _create(client, name="mover", template="two")
        r = client.put("/api/v1/prompts/mover/labels/production", json={"version": 2})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "name": "mover",
            "label": "production",
            "version": 2,
            "previous_version": 1,
        }
        got = client.get("/api/v1/prompts/mover", params={"label": "production"}).json()
        assert got["template"] == "two" and got["labels"] == ["production"]
        vs = client.get("/api/v1/prompts/mover/versions").json()["data"]
        assert vs[0]["labels"] == []  # a label points at one version only
        assert client.delete("/api/v1/prompts/mover/labels/production").status_code == 200
        r = client.get("/api/v1/prompts/mover", params={"label": "production"})
        assert r.status_code == 404 and "production" in r.json()["error"]["message"]

    def test_render_fills_variables_and_names_the_missing_ones(self, client: TestClient) -> None:
        _create(
            client,
            name="greet",
            template=[
                {"role": "system", "content": "Hi {{who}}"},
                {"role": "user", "content": "{{q}} {{who}}"},
            ],
        )
        r = client.post(
            "/api/v1/prompts/greet/render",
            json={"variables": {"who": "Ana", "q": "why?", "extra": 1}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["messages"] == [
            {"role": "system", "content": "Hi Ana"},
            {"role": "user", "content": "why? Ana"},
        ]
        r = client.post("/api/v1/prompts/greet/render", json={"variables": {"who": "Ana"}})
        assert r.status_code == 400 and "missing variables: q" in r.json()["error"]["message"]

    def test_render_writes_json_values_as_json(self, client: TestClient) -> None:
        # a JSON client's true was filled in as Python writes it: True
        _create(client, name="typed", template="{{a}} {{b}} {{c}} {{d}} {{e}}|{{f}}|")
        r = client.post(
            "/api/v1/prompts/typed/render",
            json={"variables": {"a": True, "b": False, "c": 2.5, "d": 7, "e": "té", "f": None}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["prompt"] == "true false 2.5 7 té||"
        r = client.post(
            "/api/v1/prompts/typed/render",
            content=b'{"variables": {"a": NaN, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and "variables.a: NaN" in r.text, r.text

    def test_rubrics_are_versioned_in_the_same_registry(self, client: TestClient) -> None:
        r1 = _create(
            client,
            name="tone-rubric",
            kind="rubric",
            template="Grade the tone of {{answer}} to {{question}}",
        )
        r2 = _create(client, name="tone-rubric", kind="rubric", template="Tone of {{answer}}")
        assert (r1["kind"], r2["version"]) == ("rubric", 2)
        names = [p["name"] for p in client.get("/api/v1/prompts?kind=rubric").json()["data"]]
        assert names == ["tone-rubric"]
        r = client.post("/api/v1/prompts", json={"name": "tone-rubric", "template": "x"})
        assert r.status_code == 409, r.text  # a rubric cannot turn into a prompt

    def test_concurrent_creates_get_distinct_consecutive_versions(self, client: TestClient) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def create(i: int) -> int:
            r = client.post("/api/v1/prompts", json={"name": "busy", "template": f"t{i}"})
            assert r.status_code == 201, r.text
            return int(r.json()["version"])

        with ThreadPoolExecutor(8) as pool:
            versions = sorted(pool.map(create, range(16)))
        assert versions == list(range(1, 17))
        vs = client.get("/api/v1/prompts/busy/versions").json()["data"]
        assert sorted(v["template"] for v in vs) == sorted(f"t{i}" for i in range(16))


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            ({"name": "bad name!", "template": "x"}, "name"),
            ({"name": "ok", "template": ""}, "empty"),
            ({"name": "ok", "template": [{"role": "wizard", "content": "x"}]}, "role"),
            ({"name": "ok", "template": [{"role": "user"}]}, "content"),
            ({"name": "ok", "template": 42}, "template"),
            ({"name": "ok", "template": "x", "labels": ["Prod Label"]}, "label"),
            ({"name": "ok", "template": "x", "labels": ["latest"]}, "latest"),
            ({"name": "ok", "template": "x", "kind": "dataset"}, "kind"),
            ({"name": "ok", "template": "x", "surprise": 1}, "surprise"),
            ({"name": "resolve", "template": "x"}, "reserved"),
            ({"name": "ok", "template": "x" * 200_001}, "longer than"),
            (
                {"name": "ok", "template": [{"role": "user", "content": "x", "name": {"a": 1}}]},
                "name must be a string",
            ),
            (
                {
                    "name": "ok",
                    "template": [{"role": "user", "content": "x", "name": "n" * 200_000}],
                },
                "longer than",
            ),
            ({"name": "ok", "template": "x", "parameters": {"stop": ["y" * 30_000]}}, "larger"),
        ],
    )
    def test_invalid_versions_get_400(
        self, client: TestClient, body: dict[str, object], fragment: str
    ) -> None:
        r = client.post("/api/v1/prompts", json=body)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]

    def test_unknown_prompts_versions_and_labels_get_404(self, client: TestClient) -> None:
        _create(client, name="known", template="x")
        for path, params in (
            ("/api/v1/prompts/nope", {}),
            ("/api/v1/prompts/known", {"version": "9"}),
            ("/api/v1/prompts/known", {"label": "production"}),
            ("/api/v1/prompts/nope/versions", {}),
        ):
            r = client.get(path, params=params)
            assert r.status_code == 404, (path, r.text)
        r = client.put("/api/v1/prompts/known/labels/production", json={"version": 5})
        assert r.status_code == 404
        assert client.delete("/api/v1/prompts/known/labels/nope").status_code == 404

    def test_ambiguous_or_malformed_selectors_get_400(self, client: TestClient) -> None:
        _create(client, name="sel", template="x", labels=["production"])
        bad = [
            client.get("/api/v1/prompts/sel", params={"version": 1, "label": "production"}),
            client.get("/api/v1/prompts/sel", params={"version": "one"}),
            client.get("/api/v1/prompts/sel", params={"version": 0}),
            client.get("/api/v1/prompts", params={"kind": "other"}),
            client.put("/api/v1/prompts/sel/labels/Bad%20Label", json={"version": 1}),
            client.put("/api/v1/prompts/sel/labels/latest", json={"version": 1}),
            client.put("/api/v1/prompts/sel/labels/prod", json={"version": "x"}),
        ]
        for r in bad:
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"]


class TestRoles:
    def test_ingest_key_resolves_but_cannot_change_or_list(self, client: TestClient) -> None:
        _create(client, name="app-prompt", template="Hello {{x}}", labels=["production"])
        ing = {"authorization": f"Bearer {INGEST}"}
        r = client.get(
            "/api/v1/prompts/resolve",
            params={"name": "app-prompt", "label": "production"},
            headers=ing,
        )
        assert r.status_code == 200 and r.json()["version"] == 1
        assert client.get("/api/v1/prompts", headers=ing).status_code == 403
        r = client.post("/api/v1/prompts", json={"name": "x", "template": "y"}, headers=ing)
        assert r.status_code == 403

    def test_read_key_reads_but_cannot_move_labels(self, client: TestClient) -> None:
        _create(client, name="ro", template="x", labels=["production"])
        rd = {"authorization": f"Bearer {READ}"}
        assert client.get("/api/v1/prompts/ro", headers=rd).status_code == 200
        r = client.put("/api/v1/prompts/ro/labels/production", json={"version": 1}, headers=rd)
        assert r.status_code == 403
