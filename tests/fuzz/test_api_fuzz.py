"""schemathesis against the app's OpenAPI schema, in process: no 5xx, /healthz answers throughout.

`make test` runs a quick form (a few examples per operation); `make fuzz` sets
SIGHTLINE_FUZZ_EXAMPLES for the full one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from _two_projects import KEYS, TwoProjects, two_projects

EXAMPLES = int(os.environ.get("SIGHTLINE_FUZZ_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoProjects]:
    yield from two_projects(Path(tmp_path_factory.mktemp("fuzz")))


def test_fuzz_every_operation(h: TwoProjects) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", h.app)
    seen = 0
    for result in schema.get_all_operations():
        op = result.ok()

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            for role in ("admin", "read", "ingest"):
                resp = case.call(headers={"authorization": f"Bearer {KEYS['alpha'][role]}"})
                assert resp.status_code < 500, (case.method, case.formatted_path,
                                                resp.status_code, resp.text[:300])  # fmt: skip
                case.validate_response(resp, checks=[not_a_server_error])

        run()
        seen += 1
        assert h.client.get("/healthz").status_code == 200
    assert seen >= 30
    # the data the fuzzer did not own is still there
    assert h.api("GET", "/api/v1/spans", project="beta").json()["data"]
