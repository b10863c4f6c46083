"""Lexical consistency checks of a claim against its context: polarity, frequencies, swaps.

They catch what sentence embeddings miss because the wrong claim uses the context's own words:
a negation on one side only ("included" vs "not included in any pass"), a different frequency
("once a year" vs "quarterly"), or a predicate moved to a sibling term that the context
contrasts with ("readiness probe" where the context says "liveness probe").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sightline.evals.evaluators._text import STOPWORDS, content_stems, stem

# Cues that flip the truth of what follows. "unless" is "if not", "only if" is "not unless";
# "no one", "nobody" and "non-" negate too, "no-shows" does not. Lexical negatives (exempt,
# abolished...) flip as well: "graduates are exempt" says what "unless you graduated" says.
_NEGATION_CUE = re.compile(
    r"\b(?:not|no(?!-\w)|never|none|nothing|nobody|neither|nor|cannot|without|unless|unable|"
    r"exempt|abolished|waived|prohibited|forbidden|non-?)\b|n['’]t\b"
    # "covered only if you bought it" is "not covered unless you bought it"
    r"|\bonly(?:\s+[a-z]+){0,2}?\s+(?:if|when)\b",
    re.IGNORECASE,
)
# "no more than", "not exceed", "no later than", "not below", "no component below 6.0": a
# bound, not a denial; the same bound is often written without a negation ("up to", "at
# most", "by", "minimum 6.0 in each component").
_BOUND = re.compile(
    r"(?:\b(?:no|not)|n['’]t)\s+(?:be\s+|[a-z]+\s+(?=(?:under|over|below|above)\s+\d))?"
    r"(?:more|less|fewer|later|earlier|longer|older|"
    r"younger|higher|lower|greater|bigger|larger|smaller|heavier|under|over|below|above|"
    r"exceed(?:ing)?|\w+er\s+than)\b",
    re.IGNORECASE,
)


# "interest-free" is "no interest" ("free of charge" stays: "free" already says it).
_FREE = re.compile(r"\b([A-Za-z]+)-free\b", re.IGNORECASE)


def normalise_negation(text: str) -> str:
    """``text`` with "X-free" as "no X" and bounds ("no more than") blanked out."""
    text = _FREE.sub(lambda m: f"no {m.group(1)}", text)
    return _BOUND.sub(" ", text)


def negations(text: str) -> int:
    """How many negation cues ``text`` holds (bounds like "no more than" excluded)."""
    return len(_NEGATION_CUE.findall(normalise_negation(text)))


# A negation stops at its clause's end, and where a new predicate starts: "whose language is
# not English must provide an IELTS score" does not deny the IELTS score.
_SCOPE_END = re.compile(
    r"[,;:.!?()]|\b(?:but|and|or|while|whereas|so|because|if|when|unless|must|can|could|"
    r"will|would|shall|should|may|might)\b"
)
_SCOPE_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’-]*")
SCOPE_WORDS = 3


def negation_scopes(text: str) -> list[set[str]]:
    """The stems in the scope of each negation cue: the next few content words of its clause.

    A wide scope ("cannot be cancelled, changed or refunded" negates all three; "no pass
    includes X" negates pass, include and X) makes "X is not included in any pass" and "no
    pass includes X" agree word by word. Bounds ("no more than") negate nothing.
    """
    text = normalise_negation(text)
    out: list[set[str]] = []
    for m in _NEGATION_CUE.finditer(text):
        end = _SCOPE_END.search(text, m.end())
        stop = len(text) if end is None else end.start()
        # a list after the cue ("cannot be cancelled, changed or refunded") stays in scope
        while end is not None and end.group() in (",", "or", "and"):
            nxt = _SCOPE_END.search(text, end.end())
            tail = text[end.end() : nxt.start() if nxt else len(text)]
            if len(_SCOPE_TOKEN.findall(tail)) > 2:
                break
            stop = nxt.start() if nxt else len(text)
            end = nxt
        scope: set[str] = set()
        for t in _SCOPE_TOKEN.finditer(text, m.end(), stop):
            w = t.group()
            if w.lower() in STOPWORDS:
                continue
            scope.add(stem(w))
            if len(scope) >= SCOPE_WORDS:
                break
        if end is not None and end.group().lower() in ("if", "when") and scope:
            # A denial under a condition is about the condition too: "you don't need a test
            # if your degree was taught in English" is what "graduates of English-taught
            # degrees are exempt" says.
            nxt = _SCOPE_END.search(text, end.end())
            cond = _SCOPE_TOKEN.findall(text, end.end(), nxt.start() if nxt else len(text))
            scope |= {
                stem(w) for w in [w for w in cond if w.lower() not in STOPWORDS][:SCOPE_WORDS]
            }
        if not scope:
            # A negative predicate ends its clause ("graduates of English-taught degrees are
            # exempt", "pets are prohibited"): it denies its subject, the words before it.
            begin = 0
            for e in _SCOPE_END.finditer(text, 0, m.start()):
                begin = e.end()
            for w in reversed(_SCOPE_TOKEN.findall(text, begin, m.start())):
                if w.lower() in STOPWORDS:
                    continue
                scope.add(stem(w))
                if len(scope) >= SCOPE_WORDS:
                    break
        out.append(scope)
        if m.group().lower().startswith("only"):
            # "only if" negates twice: the condition, and the predicate it guards ("only
            # covered if" = "not covered unless").
            guarded = [w for w in _SCOPE_TOKEN.findall(m.group())[1:-1]]
            if not guarded:
                begin = max((e.end() for e in _SCOPE_END.finditer(text, 0, m.start())), default=0)
                guarded = _SCOPE_TOKEN.findall(text, begin, m.start())[-SCOPE_WORDS:]
            out.append({stem(w) for w in guarded if w.lower() not in STOPWORDS})
    return out


def negated_stems(text: str) -> set[str]:
    """Stems in the scope of any negation cue of ``text`` (see :func:`negation_scopes`)."""
    return set().union(*negation_scopes(text))


_CLAUSE_CUT = re.compile(
    r";\s*|:\s+|,\s+(?=(?:but|while|whereas|although|though|so|yet|and)\s)|"
    r"(?<!\s)\s+(?=(?:but|while|whereas)\s)"  # a blank run from its start only: linear
)


def clauses(sentence: str) -> list[str]:
    """``sentence`` cut at ";", ":" and ", but / while / whereas ...": one proposition each."""
    return [c.strip(" ,.;:") for c in _CLAUSE_CUT.split(sentence) if c.strip(" ,.;:")]


# How often something happens, normalised to (times, period): "quarterly" and "four times a
# year" are one frequency, "once a year" another.
_PERIOD = {"day": "day", "week": "week", "month": "month", "year": "year", "quarter": "quarter"}
_FREQ_WORD = {
    "daily": (1, "day"), "nightly": (1, "day"), "weekly": (1, "week"),
    "fortnightly": (2, "month"), "biweekly": (2, "month"), "monthly": (1, "month"),
    "quarterly": (4, "year"), "annually": (1, "year"), "yearly": (1, "year"),
    "annual": (1, "year"), "biannually": (2, "year"), "semiannually": (2, "year"),
}  # fmt: skip
_TIMES = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "six": 6, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}  # fmt: skip
_FREQ = re.compile(
    r"\b(?:(?P<n>once|twice|one|two|three|four|five|six|\d)(?:\s+times)?\s+(?:a|per|each|every)"
    r"\s+(?P<p>day|week|month|quarter|year)|every\s+(?P<k>two|three|six|\d+\s+)?\s*"
    r"(?P<p2>day|week|month|quarter|year)s?|(?P<w>daily|nightly|weekly|fortnightly|biweekly|"
    r"monthly|quarterly|annually|yearly|biannually|semiannually))\b",
    re.IGNORECASE,
)
_EVERY_N = {"two": 2, "three": 3, "six": 6}


def frequencies(text: str) -> set[tuple[float, str]]:
    """Frequencies stated in ``text`` as (times, period): "quarterly" -> (4, "year")."""
    out: set[tuple[float, str]] = set()
    for m in _FREQ.finditer(text):
        if m.group("w"):
            out.add(_FREQ_WORD[m.group("w").lower()])
        elif m.group("p"):
            out.add(_norm_freq(_TIMES[m.group("n").lower()], m.group("p").lower()))
        else:
            k = (m.group("k") or "").strip().lower()
            n = _EVERY_N.get(k) or (int(k) if k.isdigit() else 1)
            out.add(_norm_freq(1 / n, m.group("p2").lower()))
    return out


def _norm_freq(times: float, period: str) -> tuple[float, str]:
    if period == "quarter":
        return times * 4, "year"
    if period == "month" and times < 1:
        return round(times * 12, 3), "year"  # every three months = 4 a year
    return times, _PERIOD[period]


_CAPS_RUN = re.compile(r"\b(?:[A-Z][a-z]+(?:\s+(?:of|the|and|for)\s+|\s+))+[A-Z][a-z]+\b")
_DOTTED = re.compile(r"\b(?:[A-Za-z]\.){2,}")


def acronyms(text: str) -> set[str]:
    """Acronyms ``text`` spells out: "United States" -> "us", "U.S." -> "us"."""
    out = {m.group().replace(".", "").lower() for m in _DOTTED.finditer(text)}
    for m in _CAPS_RUN.finditer(text):
        ws = [w for w in m.group().split() if w[0].isupper()]
        out.add("".join(w[0] for w in ws).lower())
        # "Department of State" is "DoS", but "European Data Protection Board" is "EDPB".
        out.add("".join(w[0] for w in m.group().split()).lower())
    return out


_TOKEN = re.compile(r"[A-Za-z][A-Za-z-]*")
# Modifiers that qualify rather than name an alternative ("existing branches", "another
# branch") and function words outside STOPWORDS.
_GENERIC = frozenset(
    """another other existing new old same different current previous next following last
    first second third whole entire full total many several various certain within until
    across per upon onto toward towards around among along""".split()
)


def siblings(texts: Iterable[str]) -> dict[str, set[str]]:
    """Terms the context contrasts: different words next to the same head word.

    "liveness probes" and "readiness probes", "Economy Light" and "Economy Classic",
    "git merge" and "git rebase": each maps to the others, by stem.
    """
    before: dict[str, set[str]] = {}
    after: dict[str, set[str]] = {}
    for t in texts:
        toks = [w.lower() for w in _TOKEN.findall(t)]
        for a, b in zip(toks, toks[1:], strict=False):
            if a in STOPWORDS or b in STOPWORDS or len(a) < 3 or len(b) < 3:
                continue
            if a in _GENERIC or b in _GENERIC:
                continue
            # "not include" next to "Plus includes": a negation is not an alternative term.
            if _NEGATION_CUE.fullmatch(a) or _NEGATION_CUE.fullmatch(b):
                continue
            sa, sb = stem(a), stem(b)
            if sa != sb:
                before.setdefault(sb, set()).add(sa)  # X head
                after.setdefault(sa, set()).add(sb)  # head X
    out: dict[str, set[str]] = {}
    for group in list(before.values()) + list(after.values()):
        for w in group:
            # "tire"/"tir" are one word under the light stemmer
            out.setdefault(w, set()).update(
                v for v in group if not (v.startswith(w) or w.startswith(v))
            )
    return {w: v for w, v in out.items() if v}


def swapped_sibling(
    claim_stems: set[str], sentence_stems: set[str], sibs: dict[str, set[str]]
) -> tuple[str, str] | None:
    """(claim term, context term) when the claim names a sibling of the sentence's term.

    The sentence is the one the claim aligns with best; the claim has term ``a`` that the
    sentence lacks, and the sentence has ``b``, a sibling of ``a``, that the claim lacks.
    """
    for a in sorted(claim_stems - sentence_stems):
        for b in sorted(sibs.get(a, set()) & (sentence_stems - claim_stems)):
            return a, b
    return None


def stems_of(text: str) -> set[str]:
    """Content stems (re-exported for the faithfulness module)."""
    return content_stems(text)
