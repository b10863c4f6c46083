"""The evaluator registry: every evaluator, built-in or third-party, is an entry point.

Built-ins register in Sightline's own ``pyproject.toml`` under the same group a plugin uses::

    [project.entry-points."sightline.evaluators"]
    relevance = "sightline.evals.evaluators:Relevance"

so the runner, ``sightline eval run`` and the benchmark find a newly installed evaluator without
any list to edit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from sightline.errors import ConfigError
from sightline.evals.base import Evaluator

__all__ = [
    "GROUP",
    "available_evaluators",
    "default_evaluator_names",
    "evaluator_class",
    "load_evaluator",
    "load_evaluators",
]

GROUP = "sightline.evaluators"
"""The entry-point group evaluators register under."""


def _entry_points() -> dict[str, EntryPoint]:
    eps: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        eps.setdefault(ep.name, ep)
    return eps


def available_evaluators() -> list[str]:
    """Names of every registered evaluator, sorted."""
    return sorted(_entry_points())


def evaluator_class(name: str) -> type[Any]:
    """The class registered as ``name``; ConfigError naming the known ones if there is none."""
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown evaluator {name!r}; registered: {known}")
    try:
        cls = ep.load()
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"evaluator {name!r} ({ep.value}) cannot be loaded: {e}; is its extra installed?"
        ) from None
    if not isinstance(cls, type):
        raise ConfigError(f"evaluator {name!r} ({ep.value}) is not a class")
    return cls


def load_evaluator(name: str, /, **options: Any) -> Evaluator:
    """An instance of the evaluator registered as ``name``, built with ``options``.

    ``name`` is positional-only: ``llm_judge`` takes a ``name`` option of its own (its score
    name), which raised "got multiple values for argument 'name'" at startup.

    Raises:
        ConfigError: unknown name, a plugin that cannot be imported, or options the
            evaluator rejects.

    Example:
        >>> ev = load_evaluator("relevance", threshold=0.6)  # doctest: +SKIP
    """
    cls = evaluator_class(name)
    try:
        ev = cls(**options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"evaluator {name!r}: invalid options {sorted(options)}: {e}") from None
    if not isinstance(ev, Evaluator):
        raise ConfigError(f"evaluator {name!r} does not implement name, version and evaluate()")
    return ev


def load_evaluators(
    names: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Evaluator]:
    """Instances of several evaluators; ``options`` maps a name to its constructor options."""
    opts = options or {}
    out = []
    for name in names:
        out.append(load_evaluator(name, **dict(opts.get(name, {}))))
    return out


def default_evaluator_names(configured: Collection[str] = ()) -> list[str]:
    """Registered evaluators that run without options, plus those in ``configured``.

    An evaluator class that sets ``requires_options = True`` (the LLM judge needs an endpoint,
    ``format`` a schema, ``reference_similarity`` a reference answer) is left out unless it is
    configured.
    """
    out = []
    for name in available_evaluators():
        try:
            cls = evaluator_class(name)
        except ConfigError:
            continue  # a plugin whose extra is missing is not a default
        if getattr(cls, "requires_options", False) and name not in configured:
            continue
        out.append(name)
    return out
