"""PSI of a feature whose baseline is tied at its maximum (a constant, a cap)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from _alerting import T0, Harness, harness, span
from sightline.drift import psi_test

YAML = """
drift:
  - name: lengths
    current: 1h
    baseline: {window: 1d, offset: 0s}
    detectors: [psi]
    sample: 100
    min_samples: 20
    permutations: 100
"""


@pytest.fixture
def hd(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path, alerts_yaml=YAML)


def test_a_rise_above_a_constant_baseline_is_a_shift(hd: Harness) -> None:
    # A classifier answers in one token for a day; then a prompt change makes it write 400.
    # Every baseline value is the same, so every quantile edge is 1: the top bin [1, inf)
    # held the baseline and the current alike and PSI was 0 (a fall to 0 tokens scored 18).
    h = hd
    day = [span(T0 - timedelta(hours=2) - timedelta(minutes=10 * i), output_tokens=1)
           for i in range(100)]  # fmt: skip
    hour = [span(T0 - timedelta(seconds=30 * (i + 1)), output_tokens=400) for i in range(100)]
    h.post_spans(day + hour)
    r = h.api("POST", "/api/v1/drift/run", json={"job": "lengths"})
    assert r.status_code == 200, r.text
    by = {x["feature"]: x for x in r.json()["data"]}
    out = by["output_tokens"]
    assert out["num_baseline"] == 100 and out["num_current"] == 100
    assert out["score"] > 0.2 and out["p_value"] < 0.01 and out["fired"], out
    assert out["details"]["current_median"] == 400
    # a feature that did not move (500 input tokens throughout) still does not fire
    assert by["input_tokens"]["score"] == 0 and not by["input_tokens"]["fired"]


def test_a_rise_above_a_capped_baseline_is_a_shift() -> None:
    # 95% of responses hit a 10-token cap; then all are 100 tokens. Only the 5% below the cap
    # told the windows apart before (PSI 0.31, from the vanished tail, not the rise).
    b = [10.0] * 95 + [0.0, 1.0, 2.0, 3.0, 4.0]
    d = psi_test(b, [100.0] * 100, feature="output_tokens", permutations=100)
    assert d.score is not None and d.score > 5 and d.fired


def test_psi_of_tied_values_stays_honest() -> None:
    # Small integers, ties everywhere, the maximum often a quantile: both windows from one
    # distribution fire at most 5 times in 100.
    def fires(i: int) -> bool:
        rng = np.random.default_rng(i)
        b = rng.choice([1.0, 2.0, 3.0], size=80, p=[0.05, 0.15, 0.8])
        c = rng.choice([1.0, 2.0, 3.0], size=80, p=[0.05, 0.15, 0.8])
        return psi_test(b, c, feature="output_tokens", permutations=100, seed=i).fired

    assert sum(fires(i) for i in range(100)) <= 5
