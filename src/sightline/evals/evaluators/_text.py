"""Text helpers shared by the evaluators: sentences, content words, numbers, names, negation.

Rule-based on purpose: spaCy's small pipeline parses ~3-4k words/s here, too slow for the
retrieved documents of 50 spans/s; these regexes do the same work at well over 100k words/s.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

_ABBREV = {
    "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "inc", "corp", "co", "ltd", "no",
    "vs", "etc", "e.g", "i.e", "approx", "fig", "u.s", "u.k", "dept", "est", "ext", "min",
    "max", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
# A sentence may start with a lower-case identifier ("pg_dump writes..."), never with a word.
_SENT_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9]|[a-z]+_[a-z])|\n\s*\n|\n(?=\s*[-*•\d])"
)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after . ! ? before a capital or digit, and on line breaks.

    Abbreviations (Dr., Corp., e.g.) and single initials do not end a sentence.
    """
    out: list[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        piece = text[start : m.start()].rstrip()
        last = piece.rsplit(None, 1)[-1].rstrip(".").lower() if piece.split() else ""
        if last in _ABBREV or (len(last) == 1 and last.isalpha()):
            continue
        if piece.strip():
            out.append(piece.strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s.lstrip("-*• ").strip() for s in out if any(c.isalnum() for c in s)]


STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself yourselves s t don't can't won't
    usually typically generally normally simply just really still even get gets got go goes
    may might must need needs let lets make makes want yes ok okay sure please note however
    although though also well like per via etc one its it's that's there's here's you'll you're
    you've we're we'll they're i'm i've i'd only does did done non isn't aren't wasn't weren't
    doesn't didn't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't cannot
    """.split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+(?:[.,]\d+)*")


_TION = re.compile(r"(?<=[cpe])tions?$")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: enough to match refund/refunds/refunded, not a real stemmer."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    # "interaction"/"interacts", "protection"/"protected", "exemption"/"exempt",
    # "completion"/"complete": the noun and the verb share a stem.
    m = _TION.search(w)
    if m is not None and m.start() >= 4:
        return w[: m.start() + 1]
    for suf in ("ations", "ation", "ingly", "ments", "ment", "ings", "ing", "ied", "ies", "able",
                "ible", "ed", "es", "s", "ly"):  # fmt: skip
        if suf == "s" and w.endswith(("ss", "us", "is")):
            continue
        # "rates", "fares", "tires" lose their "s" only; "boxes", "taxes", "pushes" their "es"
        if suf == "es" and not w.endswith(("sses", "xes", "zes", "ches", "shes")):
            continue
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            if suf in ("ied", "ies"):
                w += "y"
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":
        w = w[:-1]  # stopp(ed) -> stop
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]  # refundable/receive -> comparable stems
    return w


def words(text: str) -> list[str]:
    """Word and number tokens of ``text``, in order, original case."""
    return _WORD.findall(text)


def content_stems(text: str) -> set[str]:
    """Stems of the words that carry meaning (no stopwords, numbers or units).

    Hyphenated words count by their parts: "burst-pipe damage" and "time-of-use" share words
    with "burst pipes" and "time"; the "non" of "non-refundable" is a negation, not a word.
    """
    return {
        stem(p)
        for w in words(text)
        for p in (w.split("-") if "-" in w else (w,))
        if len(p) > 1
        and p.lower() not in STOPWORDS
        and not p[0].isdigit()
        and p.lower() not in _ALL_UNITS
        and p.lower() not in _NUM_WORDS
    } - {""}


_NUM_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "twice": 2, "half": 0.5, "dozen": 12,
}  # fmt: skip
_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9,
          "bn": 1e9, "b": 1e9, "trillion": 1e12}  # fmt: skip
_NUMBER = re.compile(
    r"(?<![\w.])(?P<cur>[$€£¥])?\s?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?::(?P<min>\d{2}))?"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn|[kKmMbB])\b)?"
    r"(?:\s?(?P<unit>%|°[CF]|[A-Za-z]+))?"
)
_NUM_WORD_RE = re.compile(r"\b(" + "|".join(_NUM_WORDS) + r")\b", re.IGNORECASE)
_DURATION = re.compile(r"(\d+)\s*hours?\s*(?:and\s*)?(\d+)\s*minutes?", re.IGNORECASE)
_UNIT_ALIASES = {
    "percent": "%", "pct": "%", "usd": "$", "dollars": "$", "dollar": "$", "eur": "€",
    "euro": "€", "euros": "€", "gbp": "£", "pounds": "£", "kilometres": "km", "kilometers": "km",
    "kilometre": "km", "kilometer": "km", "metres": "m", "meters": "m", "metre": "m",
    "meter": "m", "kilograms": "kg", "kilogram": "kg", "minutes": "min", "minute": "min",
    "mins": "min", "hours": "h", "hour": "h", "hrs": "h", "hr": "h", "days": "day",
    "weeks": "week", "months": "month", "years": "year", "seconds": "s", "second": "s",
    "sec": "s", "secs": "s", "milligrams": "mg", "grams": "g", "gram": "g", "kb": "kb",
    "cents": "¢", "cent": "¢", "c": "¢", "ct": "¢",
}  # fmt: skip
_KNOWN_UNITS = set(_UNIT_ALIASES.values()) | {
    "%", "°c", "°f", "km", "m", "kg", "mg", "g", "gb", "mb", "tb", "kwh", "psi", "kpa", "cm",
    "mm", "ml", "l", "day", "week", "month", "year", "min", "h", "s", "am", "pm", "$", "€", "£",
    "¢",
}  # fmt: skip


_ALL_UNITS = (set(_UNIT_ALIASES) | _KNOWN_UNITS) - {"m", "s", "g", "l", "c", "h"}

# Units that convert exactly into one another, as multiples of their family's smallest: "120
# minutes" states what "2 hours" does. Months and days do not (a month is 28 to 31 days), nor
# do data sizes (1 GB is 1,000 or 1,024 MB).
_CONVERSIONS: dict[str, tuple[str, float]] = {
    "s": ("time", 1), "min": ("time", 60), "h": ("time", 3600), "day": ("time", 86400),
    "week": ("time", 604800), "month": ("months", 1), "year": ("months", 12),
    "mm": ("length", 1), "cm": ("length", 10), "m": ("length", 1000), "km": ("length", 1e6),
    "mg": ("mass", 1), "g": ("mass", 1e3), "kg": ("mass", 1e6),
}  # fmt: skip


def same_quantity(value: float, unit: str) -> Iterator[tuple[float, str]]:
    """``value`` ``unit`` in each other unit of its family (120 min: 2 h, 7,200 s, ...)."""
    family = _CONVERSIONS.get(unit)
    if family is None:
        return
    base = value * family[1]
    for other, (fam, factor) in _CONVERSIONS.items():
        if fam == family[0] and other != unit:
            yield round(base / factor, 6), other


def _norm_unit(unit: str | None, cur: str | None) -> str | None:
    if cur:
        return cur
    if not unit:
        return None
    u = unit.lower()
    u = _UNIT_ALIASES.get(u, u)
    return u if u in _KNOWN_UNITS else None


def numbers(text: str, *, spelled: bool = True) -> Iterator[tuple[float, str | None]]:
    """Numeric values in ``text`` with their unit when one follows (``$`` ``%`` ``km`` ``day``).

    ``1,200`` is 1200, ``3.5 million`` is 3.5e6, ``9:30`` is 9.5, "six" is 6, and
    "6 hours and 30 minutes" also yields 6.5 hours. With ``spelled=False``, spelled-out
    numbers count only when a unit follows ("six months"): "four times a year" is phrasing.
    """
    for m in _NUMBER.finditer(text):
        raw = m.group("num").replace(",", "")
        value = float(raw)
        if m.group("min"):
            value += int(m.group("min")) / 60
        scale = m.group("scale")
        unit = m.group("unit")
        if scale and (scale.lower() in _SCALE):
            # A lone "m" after a number is metres, not millions, unless money precedes it.
            if scale.lower() in ("m", "b") and not m.group("cur"):
                unit = scale if unit is None else unit
            else:
                value *= _SCALE[scale.lower()]
        yield value, _norm_unit(unit, m.group("cur"))
    for m in _NUM_WORD_RE.finditer(text):
        rest = text[m.end() :].lstrip()
        nxt = words(rest[:20])
        unit = _norm_unit(nxt[0] if nxt else None, None)
        if spelled or unit is not None:
            yield float(_NUM_WORDS[m.group(1).lower()]), unit
    for m in _DURATION.finditer(text):
        yield int(m.group(1)) + int(m.group(2)) / 60, "h"


_DISCOURSE_HEAD = re.compile(
    r"^(?:(?:yes|no|not really|unfortunately not)[,.!:;]\s*|(?:sure|unfortunately|"
    r"fortunately|correct|indeed|actually|well|in short)\b[,.!:;]?\s*)+",
    re.IGNORECASE,
)
_YES_NO_AT_END = re.compile(r"\b(?:yes|no)\Z", re.IGNORECASE)


def strip_discourse(text: str) -> str:
    r"""``text`` without a leading "Yes," / "No." / "Unfortunately," that carries no claim.

    A trailing ", yes" / " no" goes too. The one regex that did both tried its trailing
    ``[,;]?\s*\b(?:yes|no)$`` at every position, quadratic in a run of blank space: 20,000
    spaces in a sentence took 9 s of ``faithfulness``. The tail is now found backwards.
    """
    m = _DISCOURSE_HEAD.match(text)
    body = text[m.end() :] if m else text
    nl = "\n" if body.endswith("\n") else ""  # $ also matched before a final newline
    core = body[:-1] if nl else body
    w = _YES_NO_AT_END.search(core, max(0, len(core) - 3))
    if w is None:
        return body
    i = w.start()
    while i > 0 and core[i - 1].isspace():
        i -= 1
    if i > 0 and core[i - 1] in ",;":
        i -= 1
    return core[:i] + nl


_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|neither|nor|cannot|without|unable|isn't|aren't|wasn't|"
    r"weren't|don't|doesn't|didn't|won't|wouldn't|can't|couldn't|shouldn't|mustn't|hasn't|"
    r"haven't|hadn't|n't|unless)\b|n['’]t\b",
    re.IGNORECASE,
)
_SCOPE_WORDS = 4


def negated(text: str) -> bool:
    """Whether ``text`` holds a negation cue (not, never, no, cannot, without, n't...)."""
    return _NEGATION.search(text) is not None


def negated_stems(text: str) -> set[str]:
    """Stems in the scope of a negation.

    The first content word after each cue, and the one
    right after it ("no checked baggage"), within a few words.
    """
    out: set[str] = set()
    for m in _NEGATION.finditer(text):
        toks = list(_WORD.finditer(text, m.end(), m.end() + 60))[:_SCOPE_WORDS]
        for i, t in enumerate(toks):
            w = t.group()
            if w.lower() in STOPWORDS or w[0].isdigit():
                continue
            out.add(stem(w))
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is not None and nxt.start() == t.end() + 1 and nxt.group()[0].isalpha():
                if nxt.group().lower() not in STOPWORDS:
                    out.add(stem(nxt.group()))
            break
    return out


# Words whose swap turns a supported statement into its contrary.
_ANTONYM_PAIRS = [
    ("increase", "decrease"), ("increase", "lower"), ("raise", "lower"), ("raise", "reduce"),
    ("more", "less"), ("more", "fewer"), ("higher", "lower"), ("faster", "slower"),
    ("before", "after"), ("earlier", "later"), ("early", "late"), ("morning", "evening"),
    ("morning", "night"), ("prevent", "encourage"), ("prevent", "cause"), ("allow", "prohibit"),
    ("allowed", "forbidden"), ("required", "optional"), ("mandatory", "optional"),
    ("include", "exclude"), ("included", "excluded"), ("free", "fee"), ("free", "cost"),
    ("free", "charge"), ("always", "never"), ("start", "stop"), ("open", "closed"),
    ("accept", "reject"), ("safe", "dangerous"), ("minimum", "maximum"), ("first", "last"),
    ("largest", "smallest"), ("longest", "shortest"), ("tallest", "shortest"),
    ("approve", "deny"), ("win", "lose"), ("gain", "loss"), ("north", "south"),
    ("east", "west"), ("enable", "disable"), ("above", "below"), ("full", "partial"),
    ("refundable", "nonrefundable"), ("paid", "unpaid"), ("weekly", "monthly"),
    ("daily", "weekly"),
    ("once", "twice"), ("inside", "outside"), ("same", "different"), ("all", "some"),
    ("covered", "excluded"), ("cover", "exclude"), ("stop", "faster"), ("stop", "continue"),
]  # fmt: skip
ANTONYMS: dict[str, set[str]] = {}
for _a, _b in _ANTONYM_PAIRS:
    ANTONYMS.setdefault(stem(_a), set()).add(stem(_b))
    ANTONYMS.setdefault(stem(_b), set()).add(stem(_a))

# Capitalised words that start sentences or name units, not entities.
_NOT_NAMES = frozenset(
    """i yes no hi hello thanks thank sure unfortunately however also note please start use
    check go ask make take give keep set let try add remove call contact visit open click
    first second then next finally overall in on at for from to by with without after before
    during if when while once since because so but and or the a an this that these those it
    its they we you he she there here what which who how why ok okay mon tue wed thu fri sat
    sun am pm utc gmt usd eur gbp km kg mg gb mb tb kwh psi kpa au cm mm ml pdf id url faq
    only every each both either all just even some many most any not yes no both its their
    our your my his her after before about around roughly approximately up over under
    unless until although though whether whereas unlike despite except besides between among
    """.split()
)
_NAME_TOKEN = re.compile(r"\b[A-Z][a-zA-Z'’&-]*[a-zA-Z]|\b[A-Z]{2,}\b")


def names(sentence: str) -> set[str]:
    """Lower-cased capitalised words that look like names (not sentence-initial, not units).

    A sentence's first word counts only when the next word is capitalised too ("Stripe
    Disputes"), since a plain first word is capitalised by grammar, not because it is a name.
    """
    found: set[str] = set()
    toks = list(_NAME_TOKEN.finditer(sentence))
    first = re.search(r"[A-Za-z]", sentence)
    first_pos = first.start() if first else -1
    for i, m in enumerate(toks):
        w = m.group().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        low = w.lower()
        if low in _NOT_NAMES or len(low) < 2:
            continue
        if m.start() == first_pos:
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            gap = sentence[m.end() : nxt.start()] if nxt else ""
            if nxt is None or gap.strip() or nxt.group().lower() in _NOT_NAMES:
                continue
        found.add(low)
    return found
