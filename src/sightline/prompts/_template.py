"""``{{variable}}`` templates, as text or as a list of chat messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "KINDS",
    "LABEL_PATTERN",
    "NAME_PATTERN",
    "TEMPLATE_TYPES",
    "MissingVariables",
    "render",
    "template_type",
    "validate_template",
    "variables_of",
]

KINDS = ("prompt", "rubric")
"""What a registry entry is: an application prompt, or an evaluation rubric (LLM judge)."""
TEMPLATE_TYPES = ("text", "chat")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
"""Prompt names: letters, digits, ``_``, ``.``, ``-``; at most 128 characters."""
LABEL_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
"""Labels (``production``, ``staging``, ``exp-42``...): lowercase, at most 64 characters."""

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ROLES = frozenset(("system", "user", "assistant", "developer", "tool"))

Template = str | list[dict[str, Any]]


class MissingVariables(ValueError):  # noqa: N818 - reads as "missing variables: a, b"
    """``render`` was not given every variable the template names."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"missing variables: {', '.join(missing)}")
        self.missing = missing


def template_type(template: Template) -> str:
    """``text`` for a string, ``chat`` for a list of messages."""
    return "text" if isinstance(template, str) else "chat"


def validate_template(template: object) -> Template:
    """Return the template if it is text or a list of ``{role, content}`` messages.

    Raises:
        ValueError: anything else (the message says what is wrong).
    """
    if isinstance(template, str):
        if not template:
            raise ValueError("template is empty")
        return template
    if not isinstance(template, list) or not template:
        raise ValueError("template must be a string or a non-empty list of chat messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(template):
        if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
            raise ValueError(f"message {i}: expected an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES:
            raise ValueError(f"message {i}: role must be one of {', '.join(sorted(_ROLES))}")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be a string")
        if "name" in m and not isinstance(m["name"], str):
            # the participant's name, sent on to the model API as it is: a string there too
            raise ValueError(f"message {i}: name must be a string")
        out.append(dict(m))
    return out


def variables_of(template: Template) -> list[str]:
    """The variable names a template uses, in order of first appearance."""
    texts = [template] if isinstance(template, str) else [m["content"] for m in template]
    seen: dict[str, None] = {}
    for t in texts:
        for m in _VAR.finditer(t):
            seen.setdefault(m.group(1), None)
    return list(seen)


def render(template: Template, variables: Mapping[str, object]) -> Template:
    """Fill ``{{name}}`` placeholders; values are turned into text with ``str``.

    Variables the template does not use are ignored. A value is inserted as is: placeholders
    inside it are not expanded again.

    Raises:
        MissingVariables: a variable the template names was not given.

    Example:
        >>> render("Answer {{ question }} politely.", {"question": "why?"})
        'Answer why? politely.'
    """
    missing = [v for v in variables_of(template) if v not in variables]
    if missing:
        raise MissingVariables(missing)

    def fill(text: str) -> str:
        return _VAR.sub(lambda m: str(variables[m.group(1)]), text)

    if isinstance(template, str):
        return fill(template)
    return [{**m, "content": fill(m["content"])} for m in template]
