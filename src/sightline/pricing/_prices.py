from __future__ import annotations

import fnmatch
import json
import threading
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sightline.errors import ConfigError

# OpenTelemetry's gen_ai.provider.name values, and other spellings seen in the wild, to the
# provider ids of genai-prices. Anything else is tried as-is, then without a provider.
_PROVIDER_IDS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon-bedrock": "aws",  # the Vercel AI SDK's
    "azure-openai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
}


class PriceOverride(BaseModel):
    """One entry of the user price file: prices in USD per million tokens."""

    # an infinite price makes costs NaN (0 cached tokens x inf), and a NaN spend never
    # reaches a hard limit
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    match: str = Field(description="Model name, or a glob such as 'my-finetune-*'.")
    provider: str | None = Field(None, description="Only for spans of this provider.")
    input_mtok: float = Field(ge=0)
    output_mtok: float = Field(ge=0)
    cache_read_mtok: float | None = Field(None, ge=0)
    cache_write_mtok: float | None = Field(None, ge=0)


class _PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[PriceOverride]


def load_overrides(path: Path) -> list[PriceOverride]:
    """Read a YAML or JSON price file (``models: [{match, input_mtok, output_mtok, ...}]``).

    Raises:
        ConfigError: the file is missing, unparsable or does not match the schema.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read price file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"invalid price file {path}: not UTF-8 text ({e.reason})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return _PriceFile.model_validate(data).models
    except (ValueError, yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"invalid price file {path}: {e}") from None


@dataclass(frozen=True, slots=True)
class _Rate:
    base: float
    tiers: tuple[tuple[int, float], ...] = ()

    def at(self, total_input: int) -> float:
        # genai-prices' cliff model: crossing a tier's start prices ALL tokens at that tier.
        for start, price in reversed(self.tiers):
            if total_input > start:
                return price
        return self.base


@dataclass(frozen=True, slots=True)
class _Rates:
    input: _Rate
    output: _Rate
    cache_read: _Rate | None
    cache_write: _Rate | None
    reasoning: _Rate | None = None
    per_request: float = 0.0

    def cost(self, inp: int, out: int, cached: int, written: int, reasoning: int) -> float:
        r_in = self.input.at(inp)
        fresh = max(inp - cached - written, 0)
        usd = fresh * r_in
        usd += cached * (self.cache_read.at(inp) if self.cache_read else r_in)
        usd += written * (self.cache_write.at(inp) if self.cache_write else r_in)
        if self.reasoning is not None and reasoning:
            usd += (out - reasoning) * self.output.at(inp) + reasoning * self.reasoning.at(inp)
        else:
            usd += out * self.output.at(inp)
        return usd / 1e6 + self.per_request


def _rate(value: Any) -> _Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return _Rate(float(value))
    return _Rate(float(value.base), tuple((t.start, float(t.price)) for t in value.tiers))


_MAX_CACHED = 10_000
"""(provider, model) pairs whose rates are kept; past it the cache starts over."""


class Pricer:
    """Prices LLM spans. Thread-safe; resolves each (provider, model) once.

    ``genai_prices.calc_price`` costs ~130 µs a call on this machine, too slow for 20k spans/s,
    so the rates of each model are resolved once and applied with float arithmetic; a test
    checks the result against ``calc_price`` itself.
    """

    def __init__(self, overrides: list[PriceOverride] | None = None) -> None:
        self._overrides = list(overrides or [])
        self._cache: dict[tuple[str | None, str], _Rates | None] = {}
        self._lock = threading.Lock()

    def cost_usd(
        self,
        *,
        model: str | None,
        provider: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> float | None:
        """Cost in USD, or None when the model is unknown or no tokens were reported.

        Token counts follow :class:`sightline.model.Span`: cached tokens are part of the input
        count and reasoning tokens part of the output count.
        """
        if not model or (input_tokens is None and output_tokens is None):
            return None
        key = (provider, model)
        rates = self._cache.get(key, _MISSING)
        if rates is _MISSING:
            rates = self._resolve(model, provider)
            with self._lock:
                if len(self._cache) >= _MAX_CACHED:  # model names come from clients
                    self._cache.clear()
                self._cache[key] = rates
        if rates is None or isinstance(rates, _Missing):
            return None
        inp = input_tokens or 0
        rates_: _Rates = rates
        return rates_.cost(
            inp,
            output_tokens or 0,
            min(cached_input_tokens or 0, inp),
            min(cache_write_tokens or 0, inp),
            reasoning_tokens or 0,
        )

    def is_known(self, model: str, provider: str | None = None) -> bool:
        """Whether a price exists for this model."""
        return (
            self.cost_usd(model=model, provider=provider, input_tokens=0, output_tokens=0)
            is not None
        )

    def _resolve(self, model: str, provider: str | None) -> _Rates | None:
        for o in self._overrides:
            if (o.provider is None or o.provider == provider) and fnmatch.fnmatchcase(
                model, o.match
            ):
                return _Rates(
                    input=_Rate(o.input_mtok),
                    output=_Rate(o.output_mtok),
                    cache_read=None if o.cache_read_mtok is None else _Rate(o.cache_read_mtok),
                    cache_write=None if o.cache_write_mtok is None else _Rate(o.cache_write_mtok),
                )
        return _resolve_genai_prices(model, provider)


class _Missing:
    pass


_MISSING: Any = _Missing()


def _resolve_genai_prices(model: str, provider: str | None) -> _Rates | None:
    import genai_prices

    provider_id = _PROVIDER_IDS.get(provider.lower(), provider.lower()) if provider else None
    usage = genai_prices.Usage(input_tokens=1, output_tokens=1)
    calc = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pid in (provider_id, None) if provider_id else (None,):
            try:
                calc = genai_prices.calc_price(usage, model, provider_id=pid)
                break
            except LookupError:
                continue
    if calc is None:
        return None
    mp = calc.model_price
    inp = _rate(mp.input_mtok)
    out = _rate(mp.output_mtok)
    if inp is None and out is None:
        return None
    per_request = getattr(mp, "requests_kcount", None)
    return _Rates(
        input=inp or _Rate(0.0),
        output=out or _Rate(0.0),
        cache_read=_rate(mp.cache_read_mtok),
        cache_write=_rate(mp.cache_write_mtok),
        reasoning=_rate(getattr(mp, "output_reasoning_mtok", None)),
        per_request=float(per_request) / 1000 if per_request is not None else 0.0,
    )
