from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sightline.evals.base import EvalCase, EvalResult

__all__ = ["Format"]

_FENCE_LANG = re.compile(r"[a-zA-Z0-9_-]*")


class Format:
    """Does the answer have the required format: valid JSON, a JSON Schema, a regular expression?

    Options (keyword-only):
        json: ``True`` requires valid JSON; ``"auto"`` (default) checks answers that look like
            JSON (start with ``{`` or ``[``) and skips the others; ``False`` never parses.
        schema: a JSON Schema (dict, or the path of a JSON file) the answer must satisfy
            (implies ``json=True``); validated with ``jsonschema``.
        regex: a regular expression the whole answer must match (``re.fullmatch``, DOTALL).
        strip_code_fences: read the JSON inside a Markdown code fence (default True).

    The score is 1 (compliant) or 0, and feeds ``format_compliance``. Off by default online
    unless configured (``SIGHTLINE_EVAL_OPTIONS='{"format": {"schema": ...}}'``).
    """

    name = "format"
    version = "1"
    requires_options = True

    def __init__(
        self,
        *,
        json: bool | Literal["auto"] = "auto",
        schema: Mapping[str, Any] | str | Path | None = None,
        regex: str | None = None,
        strip_code_fences: bool = True,
    ) -> None:
        import jsonschema

        if json not in (True, False, "auto"):
            raise ValueError("json must be true, false or 'auto'")
        self._json: bool | Literal["auto"] = True if schema is not None else json
        self._validator: Any = None
        if schema is not None:
            if isinstance(schema, str | Path):
                try:
                    schema = _load_json_file(Path(schema))
                except (OSError, ValueError) as e:
                    raise ValueError(f"schema file {schema}: {e}") from None
            cls = jsonschema.validators.validator_for(schema)
            try:
                cls.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise ValueError(f"invalid JSON Schema: {e.message}") from None
            _check_refs(schema, cls)
            self._validator = cls(schema)
        try:
            self._regex = re.compile(regex, re.DOTALL) if regex is not None else None
        except re.error as e:
            raise ValueError(f"invalid regex: {e}") from None
        self._strip = strip_code_fences

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Check each answer; ``None`` for no answer, or nothing to check in ``auto`` mode."""
        return [self._one(c.answer) for c in cases]

    def _one(self, answer: str | None) -> EvalResult | None:
        if answer is None:
            return None
        checked: list[str] = []
        if self._regex is not None:
            checked.append("regex")
            if not self._regex.fullmatch(answer):
                return _fail("regex_mismatch", "the answer does not match the required pattern")
        text = answer
        if self._strip:
            inner = _unfence(text)
            if inner is not None:
                text = inner
        want_json = self._json is True or (self._json == "auto" and text.lstrip()[:1] in ("{", "["))
        if want_json:
            checked.append("json")
            try:
                doc = json.loads(text)
            except ValueError as e:
                return _fail("invalid_json", f"the answer is not valid JSON: {e}")
            except RecursionError:
                # one answer must not fail the batch: the other cases' scores would go with it
                return _fail("invalid_json", "the answer's JSON is nested too deeply to parse")
            if self._validator is not None:
                checked.append("schema")
                try:
                    errors = sorted(self._validator.iter_errors(doc), key=lambda e: list(e.path))
                except RecursionError:
                    return _fail("schema_violation", "the JSON is nested too deeply to validate")
                if errors:
                    msgs = "; ".join(
                        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]
                    )
                    return _fail("schema_violation", f"the JSON does not match the schema: {msgs}")
        if not checked:
            return None
        return EvalResult(score=1.0, label="compliant", passed=True, details={"checked": checked})


_NOT_SCHEMAS = frozenset({"const", "enum", "examples", "default"})
"""Keywords whose values are data, not schemas: a "$ref" key inside them is no reference."""


def _check_refs(schema: Any, cls: Any) -> None:
    """Raise ValueError for a ``$ref`` that does not resolve within the schema.

    ``check_schema`` accepts them, and jsonschema looks them up only when an answer reaches
    them: every evaluation then raised, so every format score was stored as failed while the
    server had started as if configured. Remote references are not fetched (nor are they when
    validating). A schema with nested ``$id``s (other base URIs) is left to jsonschema.
    """
    import referencing
    import referencing.exceptions
    import referencing.jsonschema

    refs: list[str] = []
    nested_ids = False

    def walk(node: Any, root: bool) -> None:
        nonlocal nested_ids
        if isinstance(node, dict):
            if not root and isinstance(node.get("$id"), str):
                nested_ids = True
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for k, v in node.items():
                if k not in _NOT_SCHEMAS:
                    walk(v, False)
        elif isinstance(node, list):
            for v in node:
                walk(v, False)

    walk(schema, True)
    if not refs or nested_ids or not isinstance(schema, dict):
        return
    dialect = cls.META_SCHEMA.get("$schema", "") if isinstance(cls.META_SCHEMA, dict) else ""
    spec = referencing.jsonschema.specification_with(
        dialect, default=referencing.jsonschema.DRAFT202012
    )
    resource = referencing.Resource.from_contents(schema, default_specification=spec)
    base = resource.id() or ""
    # with the meta-schemas, as jsonschema resolves them
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]

    resolver = REGISTRY.with_resource(base, resource).resolver(base_uri=base)
    for ref in refs:
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as e:
            raise ValueError(
                f"invalid JSON Schema: $ref {ref!r} does not resolve ({type(e).__name__}; "
                "remote schemas are not fetched)"
            ) from None


def _unfence(text: str) -> str | None:
    """The text inside a Markdown code fence (```lang, newline, body, ```), or None.

    By slicing: the regex it replaces backtracked cubically on an unclosed fence before a run
    of blank lines (an answer of "```" and 2,000 newlines took 8 s, 20,000 hours, holding up
    every evaluator behind it in the runner).
    """
    t = text.strip()
    nl = t.find("\n")
    if nl < 0 or not t.startswith("```") or not t.endswith("```") or nl + 1 > len(t) - 3:
        return None
    if not _FENCE_LANG.fullmatch(t[3:nl].strip()):
        return None
    return t[nl + 1 : -3].strip()


def _fail(label: str, explanation: str) -> EvalResult:
    return EvalResult(score=0.0, label=label, passed=False, explanation=explanation)


def _load_json_file(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
