"""Apply a redaction policy to texts and to decoded span records (stdlib, sightline.pii, orjson)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

try:  # a server dependency; the SDK (which redacts texts, not records) runs without it
    import orjson
except ImportError:  # pragma: no cover - the server extra is installed wherever records are
    orjson = None  # type: ignore[assignment]
from sightline.pii import find_pii
from sightline.redact._policy import DEFAULT_POLICY, FIELDS, REDACT_TYPES, RedactionPolicy

__all__ = ["JSON_TEXTS", "REDACTIONS_ATTRIBUTE", "Redactor", "as_text_redactor", "redact_record"]

REDACTIONS_ATTRIBUTE = "sightline.redactions"
"""The span attribute that records how many values of each type were redacted."""

_DROPPED = object()
_MEMO_MAX = 4096
_MEMO_MAX_CHARS = 2048
_TOO_DEEP = "<TOO_DEEP>"
_CLEAN_MEMO_MAX = 1024
_CLEAN_MEMO_MAX_BYTES = 8192
_JSON_RECORD_FIELDS = (
    ("input_messages", "messages"),
    ("output_messages", "messages"),
    ("documents", "documents"),
)
JSON_TEXTS = "_json"
"""The record key under which the ingest decoder keeps the JSON texts of the messages and
documents redaction found clean: ``{name: (value, text)}`` (``sightline.store._arrow`` reuses
a text while the record still holds that very value)."""

# Cheap necessary conditions, checked before any of a type's regexes run. Python's regex engine
# scans ~10 ns a character per pattern, and find_pii runs ~30 patterns, so a text is first
# asked cheap questions at C speed: an email needs an "@"; a card, phone, IBAN, SSN or IPv4 a
# digit; an IPv6 two colons; a secret a digit (random keys have them), a URL with credentials,
# a PEM header or a word like "password". Most texts on the ingest path (ids, model names,
# prose without numbers) pass none of them (bench/redact.py measures the cost).
_DIGIT = re.compile("[0-9]").search
_NUM = re.compile(r"[0-9](?:[\s().+/-]{0,2}[0-9]){6}").search
_NINO = re.compile(r"[A-Z][A-Z] ?[0-9][0-9] ?[0-9][0-9]").search
_KEYWORDS = ("key", "secret", "token", "passw", "pwd")
# What every secret pattern of sightline.pii needs besides "://", "BEGIN" and an assignment
# (checked apart): one of the providers' key prefixes, or a 24-character token-like run (the
# high-entropy rule, Twilio's SK+32 hex). A response id such as "chatcmpl-82283da2c6f7" has
# neither, so it no longer runs the ~18 secret patterns.
_SECRET_HINT = re.compile(
    r"AKIA|ASIA|AGPA|AIDA|AROA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|hooks\.slack\.com"
    r"|[sr]k_(?:live|test)_|sk-|AIza|hf_|npm_|SG\.|eyJ|[A-Za-z0-9_+/=-]{24}"
).search
# The same cheap questions asked once of a whole JSON value (messages, documents), serialized
# by orjson at C speed: if no string inside can be a candidate, the value is not walked.
_DIGITS_AT_B = b"0123456789@"
_KEYWORDS_B = tuple(k.encode() for k in _KEYWORDS)
_IPV6_HINT_B = re.compile(rb":[0-9A-Fa-f]{0,4}:").search
_KELVIN_B = "\u212a".encode()
"""The one non-ASCII character whose lower case is an ASCII letter of a keyword (k)."""


def _assigns_secret(text: str) -> bool:
    """Whether text may hold ``password: ...`` / ``api_key=...`` (what _ASSIGNED finds)."""
    if ":" not in text and "=" not in text and " is " not in text:
        return False
    low = text.lower()
    return any(k in low for k in _KEYWORDS)


def _candidates(text: str, actions: dict[str, str]) -> list[str]:
    """The types of ``actions`` that ``text`` may hold (a superset of what it holds)."""
    digit = _DIGIT(text) is not None
    at = "@" in text
    colons = text.count(":") >= 2
    if not (digit or at or colons or "person" in actions):
        # the one common case, answered first: prose and names without digits
        if "secret" in actions and ("://" in text or "BEGIN" in text or _assigns_secret(text)):
            return ["secret"]
        return []
    num = digit and _NUM(text) is not None
    out = []
    for t in actions:
        if t == "email":
            ok = at
        elif t in ("phone", "credit_card", "iban"):
            ok = num
        elif t == "national_id":
            ok = num or (digit and _NINO(text) is not None)
        elif t == "ip_address":
            ok = (digit and "." in text) or colons
        elif t == "secret":
            # random keys are 16+ characters with digits (a 20-character one without any
            # digit is a ~3% case the high-entropy rule would not take either)
            ok = (
                (digit and len(text) >= 16 and _SECRET_HINT(text) is not None)
                or "://" in text
                or "BEGIN" in text
                or _assigns_secret(text)
            )
        else:  # person
            ok = len(text) > 3
        if ok:
            out.append(t)
    return out


def _json_bytes(v: Any) -> bytes | None:
    """``v`` serialized by orjson, or None when it cannot be (huge ints, lone surrogates)."""
    if orjson is None:
        return None
    try:
        return orjson.dumps(v)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _json_clean(v: Any, actions: dict[str, str], max_nodes: int, b: bytes | None = None) -> bool:
    """Whether no string inside the JSON-like ``v`` can yield a finding under ``actions``.

    True only when, for every string in ``v``, the types :func:`_candidates` lets through find
    nothing, and ``v`` has fewer than ``max_nodes`` arrays and objects (so none is too deep).
    Asked once of the value serialized by orjson (at C speed), with conditions that hold of
    the serialized text whenever they hold of one string in it: without a digit, an ``@``,
    "://" or "BEGIN", the only findings left are an IPv6 address (colons at most 4 hex digits
    apart, or a "::": never so in JSON's structure) and an assigned secret (a keyword and an ``=``,
    `` is `` or a colon inside a string: structural colons follow a quote, quotes inside strings
    are escaped). A False costs the usual walk; a True is always right.
    """
    if "person" in actions:
        return False
    if b is None:
        b = _json_bytes(v)
        if b is None:  # huge ints, lone surrogates: walk it
            return False
    if b.count(b"[") + b.count(b"{") >= max_nodes:
        return False
    if len(b.translate(None, _DIGITS_AT_B)) != len(b):  # 5x faster than a [0-9@] search
        return False  # email, numbers, IPv4, and the digit-gated secret rule
    if b"://" in b or b"BEGIN" in b:
        return False
    # Colons inside strings, at most: all colons but the keys' (each right after a quote),
    # plus those after an escaped quote.
    inner_colons = b.count(b":") - b.count(b'":') + b.count(b'\\":')
    if inner_colons >= 2 and (b"::" in b or (inner_colons >= 3 and _IPV6_HINT_B(b) is not None)):
        # a reported IPv6 address has 3+ colons, or 2 around "::" (fe80::1), which JSON's
        # structure never writes
        return False
    if "secret" in actions and (inner_colons or b"=" in b or b" is " in b):
        low = b.lower()
        if any(k in low for k in _KEYWORDS_B) or _KELVIN_B in b:
            return False
    return True


def _canonical(type_: str, value: str) -> str:
    """The form that is hashed: the same person's email in two cases links to one tag."""
    if type_ in ("email", "ip_address"):
        return value.lower()
    if type_ in ("phone", "credit_card", "national_id", "iban"):
        compact = "".join(c for c in value if c.isalnum()).upper()
        # 0044 20 7946 0958 is +44 20 7946 0958 dialled from abroad: one number, one tag
        return compact[2:] if type_ == "phone" and compact.startswith("00") else compact
    return value


class Redactor:
    """Redacts texts and span records under one :class:`RedactionPolicy`.

    Picklable and cheap to build: ingest sends one to its decode workers with each request.

    Args:
        policy: What to redact and how.
        secret: HMAC key of the ``hash`` action; without one, a random key for this process
            (tags then link values within the process only).
        max_depth: Nested values (attribute arrays and maps, message and document JSON) deeper
            than this are replaced by ``<TOO_DEEP>``, whatever the policy.

    Example:
        ```python
        from sightline.redact import Redactor

        r = Redactor()
        assert r("write to jane.doe@example.com") == "write to <EMAIL>"
        ```
    """

    __slots__ = (
        "_actions",
        "_clean_memo",
        "_memo",
        "_resource_memo",
        "max_depth",
        "policy",
        "secret",
    )

    def __init__(
        self,
        policy: RedactionPolicy = DEFAULT_POLICY,
        *,
        secret: bytes | None = None,
        max_depth: int = 32,
    ) -> None:
        self._build(policy, secret if secret is not None else secrets.token_bytes(32), max_depth)

    def _build(self, policy: RedactionPolicy, secret: bytes, max_depth: int) -> None:
        self.policy = policy
        self.secret = secret
        self.max_depth = max_depth
        self._memo: dict[tuple[str, str], tuple[str | None, dict[str, int]]] = {}
        self._resource_memo: tuple[dict[str, Any], dict[str, Any], dict[str, int]] | None = None
        # (field, serialized JSON) -> whether no string inside can hold a finding
        self._clean_memo: dict[tuple[str, bytes], bool] = {}
        self._actions: dict[str, dict[str, str]] = {
            f: {t: a for t in REDACT_TYPES if (a := policy.action(t, f)) != "off"} for f in FIELDS
        }

    def __getstate__(self) -> tuple[RedactionPolicy, bytes, int]:
        return self.policy, self.secret, self.max_depth

    def __setstate__(self, state: tuple[RedactionPolicy, bytes, int]) -> None:
        self._build(*state)

    def __call__(self, text: str) -> str:
        """Redact ``text`` as a prompt; a dropped text becomes ``<REDACTED>``.

        This is the ``redact`` callable ``sightline.init`` takes.
        """
        out = self.redact_text(text, "input", {})
        return "<REDACTED>" if out is None else out

    def tag(self, type_: str, value: str) -> str:
        """The ``hash`` action's replacement for ``value``: ``<EMAIL:16 hex digits>``."""
        digest = hmac.new(
            self.secret, _canonical(type_, value).encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()
        return f"<{type_.upper()}:{digest[:16]}>"

    def redact_text(self, text: str, field: str, counts: dict[str, int]) -> str | None:
        """``text`` with the findings of ``field``'s policy replaced; None when dropped.

        Adds one to ``counts[type]`` per value redacted.
        """
        actions = self._actions[field]
        # No PII value is shorter than an email like a@b.io.
        if not actions or len(text) < 6:
            return text
        # Spans of one batch repeat texts (system prompts, tool schemas, resource values): the
        # outcome of each distinct text is kept for the life of this redactor (one request).
        memo_key = (field, text)
        hit = self._memo.get(memo_key)
        if hit is not None:
            for t, n in hit[1].items():
                counts[t] = counts.get(t, 0) + n
            return hit[0]
        types = _candidates(text, actions)
        found = find_pii(text, types=types) if types else []
        mine: dict[str, int] = {}
        out = self._replace(text, found, actions, mine) if found else text
        if len(text) <= _MEMO_MAX_CHARS:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[memo_key] = (out, mine)
        for t, n in mine.items():
            counts[t] = counts.get(t, 0) + n
        return out

    def _replace(
        self, text: str, found: list[Any], actions: dict[str, str], counts: dict[str, int]
    ) -> str | None:
        parts: list[str] = []
        pos = 0
        dropped = False
        for m in found:
            action = actions[m.type]
            counts[m.type] = counts.get(m.type, 0) + 1
            if action == "drop":
                dropped = True
                continue
            parts.append(text[pos : m.start])
            if action == "hash":
                parts.append(self.tag(m.type, text[m.start : m.end]))
            else:
                parts.append(f"<{m.type.upper()}>")
            pos = m.end
        if dropped:
            return None
        parts.append(text[pos:])
        return "".join(parts)

    def _walk(self, v: Any, field: str, counts: dict[str, int], depth: int) -> Any:
        """A JSON-like value with its strings redacted; ``_DROPPED`` if a string is dropped."""
        if isinstance(v, str):
            if len(v) < 6:
                return v
            out = self.redact_text(v, field, counts)
            return _DROPPED if out is None else out
        if isinstance(v, dict | list) and depth >= self.max_depth:
            counts["_too_deep"] = counts.get("_too_deep", 0) + 1
            return _TOO_DEEP
        if isinstance(v, dict):
            out_d: dict[str, Any] = {}
            for k, x in v.items():
                # A message's role and a document's score never hold personal data.
                if k == "role" and isinstance(x, str):
                    out_d[k] = x
                    continue
                y = self._walk(x, field, counts, depth + 1)
                out_d[k] = None if y is _DROPPED else y
            return out_d
        if isinstance(v, list):
            return [None if (y := self._walk(x, field, counts, depth + 1)) is _DROPPED else y
                    for x in v]  # fmt: skip
        return v

    def _walk_attrs(self, attrs: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, x in attrs.items():
            if type(x) is str:  # most attributes: _walk's string case without the call
                if len(x) < 6:
                    out[k] = x
                    continue
                s = self.redact_text(x, "attributes", counts)
                if s is not None:
                    out[k] = s
                continue
            y = self._walk(x, "attributes", counts, 1)
            if y is not _DROPPED:
                out[k] = y
        return out

    def _clean(self, v: Any, field: str) -> bytes | None:
        """``v`` serialized, when :func:`_json_clean` says it needs no walk; else None.

        The outcome is kept per distinct serialized value for the life of this redactor (one
        request): spans of a batch repeat their system prompts and tool schemas.
        """
        actions = self._actions[field]
        if "person" in actions:
            return None
        b = _json_bytes(v)
        if b is None:
            return None
        key = (field, b)
        ok = self._clean_memo.get(key)
        if ok is None:
            ok = _json_clean(v, actions, self.max_depth - 1, b)
            if len(b) <= _CLEAN_MEMO_MAX_BYTES:
                if len(self._clean_memo) >= _CLEAN_MEMO_MAX:
                    self._clean_memo.clear()
                self._clean_memo[key] = ok
        return b if ok else None

    def redact_record(
        self, rec: dict[str, Any], *, json_texts: dict[str, tuple[Any, str]] | None = None
    ) -> dict[str, int]:
        """Redact a decoded span record in place; return the number of redactions by type.

        ``rec`` is a record as ``sightline.ingest`` builds it (``input``, ``output``,
        ``input_messages``, ``output_messages``, ``documents``, ``attributes``,
        ``resource_attributes``, ``status_message``, ``ingest_notes``). The counts are also kept
        on the span: ``attributes["sightline.redactions"]`` and an ``ingest_notes`` entry
        ``pii_redacted``. Identity columns (``user_id``, ``session_id``, ``tenant_id``) are left
        as they are: they are the keys erasure and per-user metrics work by.

        Messages and documents found clean are left as they are; with ``json_texts``, their JSON
        text is added to it (``{name: (value, text)}``), for the Arrow table to reuse (the
        decoder keeps it on the record under :data:`JSON_TEXTS`).
        """
        counts: dict[str, int] = {}
        v = rec.get("input")
        if isinstance(v, str):
            rec["input"] = self.redact_text(v, "input", counts)
        v = rec.get("output")
        if isinstance(v, str):
            rec["output"] = self.redact_text(v, "output", counts)
        for name, field in _JSON_RECORD_FIELDS:
            v = rec.get(name)
            if not v:
                continue
            b = self._clean(v, field)
            if b is None:
                w = self._walk(v, field, counts, 0)
                rec[name] = None if w is _DROPPED else w
            elif json_texts is not None:
                json_texts[name] = (v, b.decode())
        v = rec.get("status_message")
        if isinstance(v, str):
            rec["status_message"] = self.redact_text(v, "attributes", counts)
        attrs = rec.get("attributes")
        if attrs:
            rec["attributes"] = self._walk_attrs(attrs, counts)
        resource = rec.get("resource_attributes")
        if resource:
            # The spans of one resource share its attributes dict: redact it once per batch.
            memo = self._resource_memo
            if memo is None or memo[0] is not resource:
                rc: dict[str, int] = {}
                memo = self._resource_memo = (resource, self._walk_attrs(resource, rc), rc)
            rec["resource_attributes"] = memo[1]
            for t, n in memo[2].items():
                counts[t] = counts.get(t, 0) + n
        too_deep = counts.pop("_too_deep", 0)
        notes = rec.get("ingest_notes")
        if too_deep and isinstance(notes, list):
            notes.append("value_too_deep")
        if counts:
            attrs = rec.get("attributes")
            if not isinstance(attrs, dict):
                attrs = rec["attributes"] = {}
            attrs[REDACTIONS_ATTRIBUTE] = dict(counts)
            if isinstance(notes, list):
                notes.append("pii_redacted")
        return counts


def redact_record(
    rec: dict[str, Any],
    redactor: Redactor | None,
    *,
    json_texts: dict[str, tuple[Any, str]] | None = None,
) -> dict[str, int]:
    """Redact one decoded span record with ``redactor`` (nothing when it is None).

    The one call the ingest decoder makes for every span, after normalisation.
    """
    if redactor is None:
        return {}
    return redactor.redact_record(rec, json_texts=json_texts)


def as_text_redactor(
    value: str | RedactionPolicy | Redactor | Callable[[str], str],
) -> Callable[[str], str]:
    """The SDK's ``redact`` option as a text function: ``"default"``, a policy, or a callable.

    Raises:
        ValueError: an unknown policy name.
    """
    if isinstance(value, str):
        if value != "default":
            raise ValueError(f"redact: expected 'default', a RedactionPolicy or a callable, "
                             f"got {value!r}")  # fmt: skip
        return Redactor()
    if isinstance(value, RedactionPolicy):
        return Redactor(value)
    return value
