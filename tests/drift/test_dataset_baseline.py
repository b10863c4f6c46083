"""A drift job against a pinned JSONL dataset: missing fields, malformed lines, broken jobs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _alerting import T0, Harness, harness, span


def _golden(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {
            "input": f"question {i} " + "x" * rng.randint(10, 200),
            "output": "answer " + "y" * rng.randint(10, 300),
            "input_tokens": rng.randint(50, 500),
            "output_tokens": rng.randint(20, 300),
        }
        for i in range(n)
    ]


@pytest.fixture
def hd(tmp_path: Path) -> Iterator[Harness]:
    yaml = f"""
drift:
  - name: broken
    current: 1h
    baseline: {{dataset: {tmp_path / "missing.jsonl"}}}
    detectors: [psi]
  - name: golden
    current: 1h
    baseline: {{dataset: {tmp_path / "golden.jsonl"}}}
    detectors: [psi]
    sample: 100
    min_samples: 20
    permutations: 100
"""
    yield from harness(tmp_path, alerts_yaml=yaml)


def _replay(h: Harness, rows: list[dict[str, object]]) -> None:
    """The golden prompts re-run in the last hour, answered as before, in 300-900 ms."""
    rng = random.Random(7)
    h.post_spans(
        [
            span(
                T0 - timedelta(seconds=30 * (i + 1)),
                latency_ms=rng.uniform(300, 900),
                text=r["input"],
                output=r["output"],
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
            )
            for i, r in enumerate(rows)
        ]
    )


def test_a_dataset_without_latencies_has_no_latency_baseline(hd: Harness) -> None:
    # docs/drift.md's golden set has input, output and token counts; a line without latency_ms
    # was read as 0 ms, so the latency PSI compared real latencies with a column of zeros.
    rows = _golden(100, 1)
    (hd.tmp / "golden.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _replay(hd, rows)
    r = hd.api("POST", "/api/v1/drift/run", json={"job": "golden"})
    assert r.status_code == 200, r.text
    by = {x["feature"]: x for x in r.json()["data"]}
    lat = by["latency_ms"]
    assert lat["status"] == "insufficient_data" and lat["num_baseline"] == 0, lat
    assert lat["num_current"] == 100 and not lat["fired"]
    for f in ("prompt_length", "response_length", "input_tokens", "output_tokens"):
        assert by[f]["status"] == "ok" and by[f]["num_baseline"] == 100 and not by[f]["fired"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"input": ["a", "b"], "output": "x"}', "input: expected a string"),
        ('{"input": "a", "output_tokens": "many"}', "output_tokens: expected an integer"),
        ('{"input": "a", "latency_ms": "slow"}', "latency_ms: expected a number"),
    ],
)
def test_a_malformed_dataset_line_is_a_400_naming_it(hd: Harness, line: str, message: str) -> None:
    rows = [json.dumps(r) for r in _golden(40, 2)]
    (hd.tmp / "golden.jsonl").write_text("\n".join([*rows[:5], line, *rows[5:]]) + "\n")
    _replay(hd, _golden(40, 2))
    r = hd.api("POST", "/api/v1/drift/run", json={"job": "golden"})
    assert r.status_code == 400, r.text
    assert "golden.jsonl:6" in r.text and message in r.text, r.text


def test_a_broken_job_does_not_stop_the_others(hd: Harness) -> None:
    # The loop runs every job of every project; the first job's dataset does not exist, and
    # its error ended the tick: the second job never ran, in any project, at any tick.
    rows = _golden(60, 3)
    (hd.tmp / "golden.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _replay(hd, rows)
    drift = hd.state.drift
    drift.run_once()  # the first run only waits
    drift.run_once()
    r = hd.api("GET", "/api/v1/drift")
    assert r.status_code == 200, r.text
    jobs = {x["job"] for x in r.json()["data"]}
    assert jobs == {"golden"}
