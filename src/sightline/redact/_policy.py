"""Redaction policies: which PII types to act on, how, and in which fields of a span."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, get_args

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "FIELDS",
    "OFF_POLICY",
    "PATTERN_TYPES",
    "REDACT_TYPES",
    "Action",
    "RedactionPolicy",
]

Action = Literal["mask", "hash", "drop", "off"]
ACTIONS: tuple[str, ...] = get_args(Action)
"""``mask`` writes ``<EMAIL>``; ``hash`` writes ``<EMAIL:hmac>`` (the same value gives the same
tag, unreadable without the server's secret); ``drop`` removes the whole value that holds the
finding; ``off`` leaves it."""

FieldName = Literal["input", "output", "messages", "documents", "attributes"]
FIELDS: tuple[str, ...] = get_args(FieldName)
"""The parts of a span a policy addresses: ``input`` (prompt text), ``output`` (response text),
``messages`` (input and output chat messages), ``documents`` (retrieved documents) and
``attributes`` (every other attribute, resource attributes and the status message)."""

PATTERN_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "national_id",
    "ip_address",
    "secret",
)
"""The types found by patterns and checksums: cheap, on by default."""

REDACT_TYPES: tuple[str, ...] = (*PATTERN_TYPES, "person")
"""Every type a policy can name. ``person`` needs spaCy (``sightline[ml]``) and is off by
default: its NER costs milliseconds per text, against microseconds for the patterns."""


@dataclasses.dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What to redact, and how, per PII type and per field.

    A type's action applies in every field unless the field overrides it: a field set to
    ``mask``/``hash``/``drop`` applies that action to every type that is not ``off``, a field
    set to ``off`` is left alone, and ``default`` (or no entry) uses the types' actions.

    Example:
        ```python
        from sightline.redact import RedactionPolicy

        policy = RedactionPolicy.from_dict(
            {"types": {"email": "hash", "person": "mask"}, "fields": {"documents": "off"}}
        )
        assert policy.action("email", "input") == "hash"
        assert policy.action("email", "documents") == "off"
        ```
    """

    types: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {t: ("off" if t == "person" else "mask") for t in REDACT_TYPES}
    )
    """Action per type (every one of :data:`REDACT_TYPES`)."""
    fields: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(FIELDS, "default")
    )
    """Per field: ``default`` or an action overriding the types' actions."""

    def action(self, type_: str, field: str) -> str:
        """The action for ``type_`` found in ``field``."""
        t = self.types.get(type_, "off")
        if t == "off":
            return "off"
        f = self.fields.get(field, "default")
        return t if f == "default" else f

    @property
    def enabled(self) -> bool:
        """Whether anything is redacted at all."""
        return any(self.action(t, f) != "off" for t in REDACT_TYPES for f in FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready data (what :meth:`from_dict` reads)."""
        return {"types": dict(self.types), "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RedactionPolicy:
        """A policy from ``{"types": {...}, "fields": {...}}``; missing entries keep defaults.

        Raises:
            ValueError: an unknown key, type, field or action.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a redaction policy is an object with 'types' and 'fields'")
        unknown = set(data) - {"types", "fields"}
        if unknown:
            raise ValueError(f"unknown policy keys {sorted(unknown)}: use 'types' and 'fields'")
        base = cls()
        types = dict(base.types)
        fields = dict(base.fields)
        for name, target, known, allowed in (
            ("types", types, REDACT_TYPES, ACTIONS),
            ("fields", fields, FIELDS, ("default", *ACTIONS)),
        ):
            given = data.get(name)
            if given is None:
                given = {}
            if not isinstance(given, Mapping):
                raise ValueError(f"{name}: expected an object")
            for k, v in given.items():
                if k not in known:
                    raise ValueError(f"{name}: unknown {name[:-1]} {k!r}; known: {list(known)}")
                if v not in allowed:
                    raise ValueError(f"{name}.{k}: expected one of {list(allowed)}, got {v!r}")
                target[k] = v
        return cls(types=types, fields=fields)


DEFAULT_POLICY = RedactionPolicy()
"""Mask every pattern type in every field; names off."""

OFF_POLICY = RedactionPolicy(types=dict.fromkeys(REDACT_TYPES, "off"))
"""Redact nothing."""
