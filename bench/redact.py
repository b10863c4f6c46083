"""Cost of redaction on the ingest path: decoding 512-span OTLP batches with and without it.

Compared in one process, interleaved round by round: ``decode`` (no redactor), ``redact``
(the default policy, with the cheap pre-checks), ``unique`` (every user message distinct, so
no text repeats within the batch), ``naive`` (every text through every
recognizer, no pre-check) and ``pii_rich`` (the default policy on a batch where every user
message holds an email and a phone number). Prints ``<name>_us_per_span_median=...`` and the
added cost per span.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _payload import llm_request
from sightline.ingest._service import _prepare
from sightline.pii import find_pii
from sightline.redact import Redactor


class _Naive(Redactor):
    """The default policy without pre-checks: find_pii on every string."""

    def redact_text(self, text: str, field: str, counts: dict[str, int]) -> str | None:
        actions = self._actions[field]
        found = find_pii(text, types=list(actions)) if actions else []
        out = text
        for m in reversed(found):
            counts[m.type] = counts.get(m.type, 0) + 1
            out = out[: m.start] + f"<{m.type.upper()}>" + out[m.end :]
        return out


def _batch(n: int, *, pii: bool, unique: bool = False) -> bytes:
    req = llm_request(n)[0]
    if unique:  # every user message distinct (no memo hits), still without personal data
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for i, s in enumerate(ss.spans):
                    for kv in s.attributes:
                        if kv.key == "gen_ai.input.messages":
                            tag = "".join(chr(97 + (i >> (4 * k)) % 16) for k in range(4))
                            kv.value.string_value = kv.value.string_value.replace(
                                "?", f" for the team called {tag}?"
                            )
    if pii:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for i, s in enumerate(ss.spans):
                    for kv in s.attributes:
                        if kv.key == "gen_ai.input.messages":
                            kv.value.string_value = kv.value.string_value.replace(
                                "?", f"? I am jane{i}@example.com, call +1 415 555 {1000 + i}."
                            )
    return req.SerializeToString()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short run (tests)")
    args = ap.parse_args()
    rounds, n = (3, 128) if args.quick else (21, 512)
    plain, rich = _batch(n, pii=False), _batch(n, pii=True)
    unique = _batch(n, pii=False, unique=True)
    cases = {
        "decode": (plain, None),
        "redact": (plain, Redactor()),
        "unique_decode": (unique, None),
        "unique_redact": (unique, Redactor()),
        "naive": (plain, _Naive()),
        "pii_rich": (rich, Redactor()),
        "pii_rich_decode": (rich, None),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, (body, redactor) in cases.items():
            t0 = time.perf_counter()
            _prepare("otlp_proto", body, None, "p", 1 << 26, redactor)
            times[name].append((time.perf_counter() - t0) / n * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k}_us_per_span_median={v:.1f}")
    print(f"redaction_added_us_per_span={med['redact'] - med['decode']:.1f}")
    print(f"unique_added_us_per_span={med['unique_redact'] - med['unique_decode']:.1f}")
    print(f"naive_added_us_per_span={med['naive'] - med['decode']:.1f}")
    print(f"pii_rich_added_us_per_span={med['pii_rich'] - med['pii_rich_decode']:.1f}")


if __name__ == "__main__":
    main()
