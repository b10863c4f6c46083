"""The DriftDetector plug point and the five built-in detectors.

A detector takes the two sampled windows and the job's test settings and returns detections; it
does no IO (embeddings come through ``Samples.embed``, which the job runner provides).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sightline.drift import _detectors as det
from sightline.store.base import SpanSample

__all__ = ["BUILTIN_DETECTORS", "DriftDetector", "Samples", "TestSettings"]

Embed = Callable[[Sequence[str]], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TestSettings:
    """How strict a job's tests are."""

    alpha: float
    permutations: int
    min_samples: int
    seed: int


@dataclasses.dataclass(frozen=True, slots=True)
class Samples:
    """The baseline and current samples of one run, and the embedder (None without ml)."""

    baseline: list[SpanSample]
    current: list[SpanSample]
    embed: Embed | None

    def texts(self, field: str) -> tuple[list[str], list[str]]:
        """Non-empty ``input`` or ``output`` texts of each window."""
        b = [t for s in self.baseline if (t := getattr(s, field))]
        c = [t for s in self.current if (t := getattr(s, field))]
        return b, c


class DriftDetector(Protocol):
    """Compares a baseline window with a current one."""

    name: str
    needs_embeddings: bool

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        """One detection per feature the detector looks at."""
        ...


def _num(f: Callable[[SpanSample], float | int | None]) -> Callable[[SpanSample], float | None]:
    def g(s: SpanSample) -> float | None:
        v = f(s)
        return None if v is None else float(v)

    return g


_PSI_FEATURES: list[tuple[str, Callable[[SpanSample], float | None]]] = [
    ("prompt_length", _num(lambda s: len(s.input) if s.input is not None else None)),
    ("response_length", _num(lambda s: len(s.output) if s.output is not None else None)),
    ("input_tokens", _num(lambda s: s.input_tokens)),
    ("output_tokens", _num(lambda s: s.output_tokens)),
    ("latency_ms", _num(lambda s: s.duration_ms)),
]


class _Psi:
    name = "psi"
    needs_embeddings = False

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        out = []
        for feature, f in _PSI_FEATURES:
            b = [v for v in map(f, samples.baseline) if v is not None]
            c = [v for v in map(f, samples.current) if v is not None]
            out.append(
                det.psi_test(
                    b,
                    c,
                    feature=feature,
                    alpha=settings.alpha,
                    permutations=settings.permutations,
                    min_samples=settings.min_samples,
                    seed=settings.seed,
                )
            )
        return out


class _Tokens:
    name = "token_distribution"
    needs_embeddings = False

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        b, c = samples.texts("output")
        return [
            det.token_distribution(
                b,
                c,
                alpha=settings.alpha,
                permutations=settings.permutations,
                min_samples=settings.min_samples,
                seed=settings.seed,
            )
        ]


class _Mmd:
    name = "embedding_mmd"
    needs_embeddings = True

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        embed = samples.embed
        assert embed is not None  # noqa: S101  # the runner checks needs_embeddings
        out = []
        for feature, field in (("prompt", "input"), ("response", "output")):
            b, c = samples.texts(field)
            if len(b) < settings.min_samples or len(c) < settings.min_samples:
                out.append(
                    det._insufficient(self.name, feature, len(b), len(c), settings.min_samples)
                )
                continue
            out.append(
                det.embedding_mmd(
                    embed(b),
                    embed(c),
                    feature=feature,
                    alpha=settings.alpha,
                    permutations=settings.permutations,
                    min_samples=settings.min_samples,
                    seed=settings.seed,
                    examples=c,
                )
            )
        return out


class _Topics:
    name = "emerging_topics"
    needs_embeddings = True

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        embed = samples.embed
        assert embed is not None  # noqa: S101  # the runner checks needs_embeddings
        b, c = samples.texts("input")
        if len(b) < settings.min_samples or len(c) < settings.min_samples:
            return [det._insufficient(self.name, "prompt", len(b), len(c), settings.min_samples)]
        return [
            det.emerging_topics(
                embed(b),
                embed(c),
                c,
                alpha=settings.alpha,
                permutations=settings.permutations,
                min_samples=settings.min_samples,
                seed=settings.seed,
            )
        ]


class _SameInput:
    name = "semantic_same_input"
    needs_embeddings = True

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        embed = samples.embed
        assert embed is not None  # noqa: S101  # the runner checks needs_embeddings
        by_b: dict[str, list[str]] = {}
        by_c: dict[str, list[str]] = {}
        for s in samples.baseline:
            if s.input and s.output:
                by_b.setdefault(s.input, []).append(s.output)
        for s in samples.current:
            if s.input and s.output:
                by_c.setdefault(s.input, []).append(s.output)
        pairs = {q: (embed(by_b[q]), embed(outs)) for q, outs in by_c.items() if q in by_b}
        return [
            det.semantic_same_input(
                pairs,
                alpha=settings.alpha,
                permutations=max(settings.permutations, 200),
                seed=settings.seed,
            )
        ]


_NUMERIC_DESCRIPTORS = ("sentiment", "reading_level", "num_words")
_CATEGORICAL_DESCRIPTORS = ("language", "refusal", "json", "top_terms")


def _labels(name: str, d: Mapping[str, Any]) -> list[str]:
    v = d.get(name)
    if name == "top_terms":
        return [str(t) for t in v] if isinstance(v, list) else []
    if isinstance(v, bool):
        return [name if v else f"not_{name}"]
    return [str(v)] if v is not None else []


class _Descriptors:
    """(6) Response descriptors (docs/signals.md): PSI of the numeric, JS of the categorical.

    PSI for sentiment, reading level and words; JS for language, refusal, JSON and top terms.

    Descriptors stored by the ``descriptors`` evaluator are used; a sampled span without them
    is described on the spot.
    """

    name = "descriptors"
    needs_embeddings = False

    def detect(self, samples: Samples, settings: TestSettings) -> list[det.Detection]:
        try:
            b = [d for s in samples.baseline if (d := _described(s)) is not None]
            c = [d for s in samples.current if (d := _described(s)) is not None]
        except ImportError:
            reason = "descriptors need the ml extra: pip install 'sightline[ml]'"
            return [
                det.Detection(
                    "descriptors",
                    "-",
                    None,
                    None,
                    None,
                    False,
                    len(samples.baseline),
                    len(samples.current),
                    "unavailable",
                    {"reason": reason},
                )  # fmt: skip
            ]
        out = []
        for f in _NUMERIC_DESCRIPTORS:
            found = det.psi_test(
                [float(v) for d in b if isinstance(v := d.get(f), int | float)],
                [float(v) for d in c if isinstance(v := d.get(f), int | float)],
                feature=f,
                alpha=settings.alpha,
                permutations=settings.permutations,
                min_samples=settings.min_samples,
                seed=settings.seed,
            )
            out.append(dataclasses.replace(found, detector="descriptors"))
        for f in _CATEGORICAL_DESCRIPTORS:
            out.append(
                det.categorical_test(
                    [_labels(f, d) for d in b],
                    [_labels(f, d) for d in c],
                    feature=f,
                    alpha=settings.alpha,
                    permutations=settings.permutations,
                    min_samples=settings.min_samples,
                    seed=settings.seed,
                )
            )
        return out


def _described(s: SpanSample) -> Mapping[str, Any] | None:
    if s.descriptors is not None:
        return s.descriptors
    if not s.output:
        return None
    from sightline.evals._descriptors import describe

    return describe(s.output)


BUILTIN_DETECTORS: dict[str, DriftDetector] = {
    d.name: d for d in (_SameInput(), _Mmd(), _Tokens(), _Psi(), _Topics(), _Descriptors())
}
"""The built-in detectors by name, numbered (1)–(5) in docs/drift.md, (6) in docs/signals.md."""
