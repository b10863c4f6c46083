"""Release markers: posted or detected from new versions in spans, and before/after comparison."""

from sightline.releases._compare import Comparison, MetricChange, compare_windows
from sightline.releases._detect import ReleaseDetector

__all__ = ["Comparison", "MetricChange", "ReleaseDetector", "compare_windows"]
