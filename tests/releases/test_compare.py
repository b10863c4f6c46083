"""The release comparison's tests, on cases computed by hand (the A/B comparison's examples)."""

from __future__ import annotations

import pytest

from sightline.releases import compare_windows
from sightline.releases._compare import two_proportion_z


def test_two_proportion_z_matches_the_hand_computation() -> None:
    # p1 = .30, p2 = .45, pooled .375: z = .15 / sqrt(.375 * .625 * .02) = 2.1909
    z, p = two_proportion_z(30, 100, 45, 100) or (None, None)
    assert z == pytest.approx(2.1909, abs=1e-4) and p == pytest.approx(0.0285, abs=1e-4)
    assert two_proportion_z(0, 10, 0, 10) is None  # no variance: no test
    assert two_proportion_z(1, 0, 1, 10) is None


def test_regressions_and_improvements() -> None:
    before = {"latency_ms": [100.0, 110, 120, 130, 140, 150], "error": [0.0] * 50,
              "score:relevance": [0.9, 0.8, 0.85, 0.95, 0.9, 0.88]}  # fmt: skip
    after = {"latency_ms": [300.0, 310, 320, 330, 340, 350], "error": [1.0] * 10 + [0.0] * 40,
             "score:relevance": [0.99, 0.98, 0.97, 0.99, 0.96, 0.995]}  # fmt: skip
    c = compare_windows(before, after)
    by = {m.metric: m for m in c.metrics}
    # no ties, 12 values: exact Mann-Whitney; every after value is larger: U = 36, p = 2/924
    assert by["latency_ms"].statistic == 36 and by["latency_ms"].p_value == pytest.approx(2 / 924)
    assert by["latency_ms"].direction == "regression"
    assert by["error_rate"].direction == "regression" and by["error_rate"].after == 0.2
    assert by["score:relevance"].direction == "improvement"
    assert by["cost_usd"].direction == "none" and by["cost_usd"].p_value is None
    assert [m.metric for m in c.regressions] == ["error_rate", "latency_ms"]


def test_error_rate_needs_five_calls_on_each_side() -> None:
    # docs/releases.md: each side needs at least 5 values. One failed call after a hundred
    # clean ones is no evidence of a regression (the z-test's normal approximation is void).
    c = compare_windows({"error": [0.0] * 100}, {"error": [1.0]})
    err = {m.metric: m for m in c.metrics}["error_rate"]
    assert err.num_after == 1 and err.after == 1.0
    assert err.p_value is None and not err.significant and err.direction == "none"
    assert c.regressions == []
    c = compare_windows({"error": [1.0]}, {"error": [0.0] * 100})
    assert {m.metric: m for m in c.metrics}["error_rate"].p_value is None


def test_direction_follows_the_test_not_the_means() -> None:
    # Every call after the release is about twice as slow; one 100 s outlier before it pulls
    # the mean before above the mean after. Mann-Whitney finds the shift up, so latency
    # regressed; reading the direction off the means called it an improvement.
    before = {"latency_ms": [100.0 + i for i in range(20)] + [100_000.0], "error": [0.0] * 21}
    after = {"latency_ms": [200.0 + i for i in range(21)], "error": [0.0] * 21}
    c = compare_windows(before, after)
    lat = {m.metric: m for m in c.metrics}["latency_ms"]
    assert lat.before is not None and lat.after is not None and lat.before > lat.after
    assert lat.significant and lat.direction == "regression"
    assert [m.metric for m in c.regressions] == ["latency_ms"]
    # and a score that went down for nearly every call is a regression, whatever one outlier does
    sb = {"score:relevance": [0.9 + i / 1000 for i in range(20)] + [-50.0], "error": [0.0] * 21}
    sa = {"score:relevance": [0.5 + i / 1000 for i in range(21)], "error": [0.0] * 21}
    rel = {m.metric: m for m in compare_windows(sb, sa).metrics}["score:relevance"]
    assert rel.direction == "regression"
