"""A/B comparison of two prompt versions, variants or models, with significance tests."""

from sightline.compare._compare import compare_groups
from sightline.compare._stats import holm, mann_whitney, two_proportion_z, two_proportions
from sightline.compare._trend import trend

__all__ = [
    "compare_groups",
    "holm",
    "mann_whitney",
    "trend",
    "two_proportion_z",
    "two_proportions",
]
