"""The significance tests against hand-worked examples (expected values computed without scipy)."""

from __future__ import annotations

import math

import pytest

from sightline.compare import holm, mann_whitney, two_proportions


class TestMannWhitney:
    def test_exact_p_value_of_a_small_sample_without_ties(self) -> None:
        # A = 1, 3, 5 and B = 2, 4, 6. U_A counts the pairs where A is larger: 3>2, 5>2, 5>4.
        # Under H0 the 20 = C(6, 3) rankings are equally likely; U for n = m = 3 takes the
        # values 0..9 with counts 1, 1, 2, 3, 3, 3, 3, 2, 1, 1, so P(U <= 3) = 7/20 and the
        # two-sided exact p-value is 2 * 7/20 = 0.7.
        r = mann_whitney([1.0, 3.0, 5.0], [2.0, 4.0, 6.0])
        assert r["u"] == 3.0
        assert r["method"] == "exact"
        assert r["p_value"] == pytest.approx(0.7)
        assert r["effect_size"] == pytest.approx(2 * 3 / 9 - 1)
        assert (r["a"]["n"], r["b"]["n"], r["a"]["median"], r["b"]["median"]) == (3, 3, 3.0, 4.0)

    def test_complete_separation_gives_the_smallest_exact_p(self) -> None:
        # Every A above every B: U_A = 9, P(U >= 9) = 1/20, two-sided p = 0.1.
        r = mann_whitney([0.9, 0.8, 0.7], [0.4, 0.5, 0.6])
        assert r["u"] == 9.0 and r["p_value"] == pytest.approx(0.1)
        assert r["effect_size"] == pytest.approx(1.0)

    def test_ties_use_the_normal_approximation_with_corrections(self) -> None:
        a, b = [1.0, 1.0, -1.0], [-1.0, -1.0]
        # Ranks: the three -1 share ranks 1-3 (mean 2), the two 1 share 4-5 (mean 4.5).
        # R_A = 4.5 + 4.5 + 2 = 11, U_A = R_A - 3*4/2 = 5; mean n_a n_b / 2 = 3.
        # Tie-corrected variance: n_a n_b / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1)))
        #   = 6/12 * (6 - (24 + 6) / 20) = 2.25, sigma = 1.5.
        # z with continuity correction = (5 - 3 - 0.5) / 1.5 = 1; p = erfc(1 / sqrt 2).
        u, mu, sigma = 5.0, 3.0, 1.5
        expected_p = math.erfc(((u - mu - 0.5) / sigma) / math.sqrt(2))
        r = mann_whitney(a, b)
        assert r["method"] == "asymptotic"
        assert r["u"] == u
        assert r["p_value"] == pytest.approx(expected_p, rel=1e-9)
        assert r["p_value"] == pytest.approx(0.3173, abs=1e-4)

    def test_fewer_than_two_values_on_a_side_is_not_tested(self) -> None:
        r = mann_whitney([1.0], [2.0, 3.0])
        assert r["p_value"] is None and r["status"] == "insufficient_data"
        assert r["a"]["n"] == 1 and r["b"]["n"] == 2


class TestTwoProportions:
    def test_hand_worked_z_and_p(self) -> None:
        # 45/100 against 30/100: pooled p = 75/200 = 0.375,
        # se = sqrt(0.375 * 0.625 * (1/100 + 1/100)) = sqrt(0.0046875),
        # z = 0.15 / se = 2.19089..., p = erfc(z / sqrt 2) = 0.02846...
        se = math.sqrt(0.375 * 0.625 * 0.02)
        z = 0.15 / se
        r = two_proportions(45, 100, 30, 100)
        assert r["z"] == pytest.approx(z, rel=1e-12)
        assert r["z"] == pytest.approx(2.19089, abs=1e-5)
        assert r["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
        assert r["p_value"] == pytest.approx(0.02846, abs=1e-5)
        assert r["difference"] == pytest.approx(-0.15)
        assert (r["a"]["rate"], r["b"]["rate"], r["a"]["n"], r["b"]["n"]) == (0.45, 0.3, 100, 100)

    def test_three_of_three_against_one_of_three_is_z_sqrt_3(self) -> None:
        # pooled 4/6, se = sqrt(2/9 * 2/3) = 2 / sqrt 27, z = (2/3) / se = sqrt 3
        r = two_proportions(3, 3, 1, 3)
        assert r["z"] == pytest.approx(math.sqrt(3))
        assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(3) / math.sqrt(2)))

    def test_identical_extreme_rates_are_no_difference(self) -> None:
        r = two_proportions(0, 10, 0, 20)
        assert (r["z"], r["p_value"]) == (0.0, 1.0)

    def test_an_empty_side_is_insufficient(self) -> None:
        r = two_proportions(0, 0, 3, 10)
        assert r["p_value"] is None and r["status"] == "insufficient_data"


class TestHolm:
    def test_hand_worked_adjustment(self) -> None:
        # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, raised to 0.06: the
        # adjusted values never decrease with the rank); None is not a test and stays None
        assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])

    def test_adjusted_values_are_capped_at_one(self) -> None:
        assert holm([0.5, 0.6]) == [1.0, 1.0]
        assert holm([]) == [] and holm([None]) == [None]
