"""Cost of an LLM call from its model and token counts, from the ``genai-prices`` data."""

from sightline.pricing._prices import PriceOverride, Pricer, load_overrides

__all__ = ["PriceOverride", "Pricer", "load_overrides"]
