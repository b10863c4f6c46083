from __future__ import annotations

import random
import warnings
from pathlib import Path

import genai_prices
import pytest

from sightline.errors import ConfigError
from sightline.pricing import PriceOverride, Pricer, load_overrides


def _reference(model: str, provider: str | None, **usage: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            genai_prices.calc_price(
                genai_prices.Usage(**usage), model, provider_id=provider
            ).total_price
        )


class TestAgainstGenaiPrices:
    @pytest.mark.parametrize(
        ("model", "provider"),
        [
            ("gpt-4o", "openai"),
            ("gpt-4o-mini", "openai"),
            ("o3-mini", "openai"),
            ("claude-sonnet-4-5", "anthropic"),
            ("claude-3-5-haiku-20241022", "anthropic"),
            ("gemini-2.5-pro", "google"),
        ],
    )
    def test_matches_calc_price(self, model: str, provider: str) -> None:
        """The cached fast path equals genai-prices' own calculation, tiers included."""
        pricer = Pricer()
        rng = random.Random(model)
        for _ in range(200):
            inp = rng.choice([rng.randint(0, 5000), rng.randint(150_000, 400_000)])
            cached = rng.randint(0, inp // 2)
            written = rng.randint(0, (inp - cached) // 2)
            out = rng.randint(0, 4000)
            ours = pricer.cost_usd(
                model=model,
                provider=provider,
                input_tokens=inp,
                output_tokens=out,
                cached_input_tokens=cached,
                cache_write_tokens=written,
            )
            ref = _reference(
                model,
                provider,
                input_tokens=inp,
                output_tokens=out,
                cache_read_tokens=cached,
                cache_write_tokens=written,
            )
            assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)

    def test_reasoning_tokens_are_inside_output(self) -> None:
        pricer = Pricer()
        with_r = pricer.cost_usd(
            model="o3-mini",
            provider="openai",
            input_tokens=100,
            output_tokens=1000,
            reasoning_tokens=800,
        )
        without = pricer.cost_usd(
            model="o3-mini", provider="openai", input_tokens=100, output_tokens=1000
        )
        assert (
            with_r
            == without
            == pytest.approx(_reference("o3-mini", "openai", input_tokens=100, output_tokens=1000))
        )

    def test_cached_tokens_are_cheaper(self) -> None:
        pricer = Pricer()
        full = pricer.cost_usd(
            model="gpt-4o", provider="openai", input_tokens=10_000, output_tokens=0
        )
        cached = pricer.cost_usd(
            model="gpt-4o",
            provider="openai",
            input_tokens=10_000,
            output_tokens=0,
            cached_input_tokens=10_000,
        )
        assert full == pytest.approx(0.025) and cached == pytest.approx(0.0125)

    def test_otel_provider_names_resolve(self) -> None:
        pricer = Pricer()
        assert (
            pricer.cost_usd(
                model="gpt-4o", provider="azure.ai.openai", input_tokens=1, output_tokens=1
            )
            is not None
        )
        assert (
            pricer.cost_usd(
                model="claude-3-5-haiku-20241022",
                provider="aws.bedrock",
                input_tokens=1,
                output_tokens=1,
            )
            is not None
        )


class TestUnknownAndOverrides:
    def test_unknown_model_has_no_cost(self) -> None:
        assert (
            Pricer().cost_usd(
                model="my-own-llm", provider="openai", input_tokens=5, output_tokens=5
            )
            is None
        )
        assert Pricer().cost_usd(model=None, provider=None, input_tokens=5, output_tokens=5) is None

    def test_no_tokens_no_cost(self) -> None:
        assert (
            Pricer().cost_usd(
                model="gpt-4o", provider="openai", input_tokens=None, output_tokens=None
            )
            is None
        )

    def test_override_file_wins(self, tmp_path: Path) -> None:
        f = tmp_path / "prices.yaml"
        f.write_text(
            "models:\n  - match: 'acme-ft-*'\n    input_mtok: 2\n    output_mtok: 8\n"
            "    cache_read_mtok: 0.5\n  - match: gpt-4o\n    provider: openai\n"
            "    input_mtok: 1\n    output_mtok: 1\n"
        )
        pricer = Pricer(load_overrides(f))
        assert pricer.cost_usd(
            model="acme-ft-2024",
            provider=None,
            input_tokens=1_000_000,
            output_tokens=1_000_000,
            cached_input_tokens=500_000,
        ) == pytest.approx(0.5 * 2 + 0.5 * 0.5 + 8)
        assert pricer.cost_usd(
            model="gpt-4o", provider="openai", input_tokens=1_000_000, output_tokens=0
        ) == pytest.approx(1.0)
        # the override is provider-scoped: other providers keep genai-prices' price
        assert pricer.cost_usd(
            model="gpt-4o", provider="azure", input_tokens=1_000_000, output_tokens=0
        ) == pytest.approx(2.5)

    @pytest.mark.parametrize(
        "text",
        [
            "models: [{match: x}]",
            "models: 3",
            "- a\n-",
            "models: [{match: x, input_mtok: -1, output_mtok: 1}]",
            "models: [{match: x, input_mtok: 1, output_mtok: 1, z: 1}]",
            # infinite prices cost NaN (0 cached tokens x inf): a NaN spend passes hard limits
            "models: [{match: x, input_mtok: .inf, output_mtok: 1}]",
            "models: [{match: x, input_mtok: 1, output_mtok: 1e400}]",
            "models: [{match: x, input_mtok: 1, output_mtok: 1, cache_read_mtok: .nan}]",
        ],
    )
    def test_bad_override_file(self, tmp_path: Path, text: str) -> None:
        f = tmp_path / "p.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match="invalid price file"):
            load_overrides(f)

    def test_override_file_not_utf8(self, tmp_path: Path) -> None:
        f = tmp_path / "p.yaml"
        f.write_bytes(b"models:\n  - match: caf\xe9-*\n    input_mtok: 1\n    output_mtok: 1\n")
        with pytest.raises(ConfigError, match="invalid price file .*not UTF-8"):
            load_overrides(f)

    def test_bad_files_stop_serve_with_a_message(self, tmp_path: Path) -> None:
        from click.testing import CliRunner

        from sightline.cli import main

        prices = tmp_path / "p.yaml"
        prices.write_bytes(b"models:\n  - match: caf\xe9\n    input_mtok: 1\n    output_mtok: 1\n")
        budgets = tmp_path / "b.yaml"
        budgets.write_bytes(b"budgets:\n  - name: caf\xe9\n    limit_usd: 1\n")
        for flag, path in (("--prices-file", prices), ("--budgets", budgets)):
            r = CliRunner().invoke(
                main,
                ["serve", "--port", "0", "--otlp-grpc-port", "0",
                 "--data-dir", str(tmp_path / "data"), flag, str(path)],
            )  # fmt: skip
            assert r.exit_code == 1, r.output
            assert "not UTF-8" in r.output and str(path) in r.output
            assert r.exception is None or isinstance(r.exception, SystemExit)

    def test_missing_override_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read"):
            load_overrides(tmp_path / "nope.yaml")

    def test_json_override_file(self, tmp_path: Path) -> None:
        f = tmp_path / "p.json"
        f.write_text('{"models": [{"match": "m", "input_mtok": 1, "output_mtok": 2}]}')
        assert load_overrides(f) == [PriceOverride(match="m", input_mtok=1, output_mtok=2)]


def test_the_rates_cache_stays_bounded_under_made_up_model_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sightline.pricing import _prices

    monkeypatch.setattr(_prices, "_MAX_CACHED", 50)
    p = Pricer()
    known = p.cost_usd(model="gpt-4o", provider="openai", input_tokens=1000, output_tokens=100)
    for i in range(120):  # a client sending a new model name on every span
        assert (
            p.cost_usd(model=f"made-up-{i}", provider=None, input_tokens=1, output_tokens=1) is None
        )
    assert len(p._cache) <= 50
    # the cache starting over changes no price
    again = p.cost_usd(model="gpt-4o", provider="openai", input_tokens=1000, output_tokens=100)
    assert again == known and known is not None
