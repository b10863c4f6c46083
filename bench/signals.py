"""Throughput of the signals of docs/signals.md.

    python bench/signals.py            # outcome metrics over 1,000,000 spans (make bench)
    python bench/signals.py --quick    # 50,000 spans (make test)

Reported (medians): descriptors per second (VADER, textstat, langdetect, refusal, JSON, top
terms on support answers, one core), self-consistency sets of 3 answers per second (embeddings
cached after the first pass, as in a runner batch), and the outcome metrics query per model
over 7 days of spans (bench/query.py's data; one converted outcome per 10 sessions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from query import END, START, fill  # noqa: E402
from sightline.evals._descriptors import describe  # noqa: E402
from sightline.evals.evaluators import self_consistency  # noqa: E402
from sightline.store import DuckDBStore  # noqa: E402
from sightline.store.base import OutcomeQuery  # noqa: E402

ANSWERS = [
    "Happy to help! Your order ships within {n} business days. Have a wonderful day!",
    "Unfortunately the refund for order {n} failed again; the payment system is down.",
    '{{"status": "ok", "order": {n}, "eta_days": 3}}',
    "I'm sorry, I can't help with that request.",
    "Bonjour ! Votre commande {n} a été expédiée hier et arrivera bientôt.",
    "To reset your password, open the sign-in page and choose Forgot password ({n}).",
]


def _median_rate(fn: object, items: list[object], runs: int) -> float:
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for x in items:
            fn(x)  # type: ignore[operator]
        rates.append(len(items) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 spans instead of 1,000,000")
    args = ap.parse_args()
    n = 50_000 if args.quick else 1_000_000
    texts = [ANSWERS[i % len(ANSWERS)].format(n=i) for i in range(60 if args.quick else 300)]
    describe(texts[0])  # load the lexicon and the language profiles
    d_rate = _median_rate(describe, texts, 3)
    sets = [[t, t.replace("3", "5"), texts[(i + 1) % len(texts)]] for i, t in enumerate(texts)]
    self_consistency(sets[0])  # load the embedder
    s_rate = _median_rate(self_consistency, sets, 3)
    with tempfile.TemporaryDirectory() as tmp:
        fill(Path(tmp), n)
        store = DuckDBStore(Path(tmp) / "sightline.duckdb")
        store.migrate()
        store._write.execute(
            "INSERT INTO outcomes SELECT 'bench', 'o' || i, NULL, 'sess-' || (i * 10), "
            "'converted', 1.0, NULL, '{}', now() FROM range(2000) r(i)"
        )
        q = OutcomeQuery(
            project_id="bench", start=START, end=END + timedelta(seconds=1), group_by=("model",)
        )
        rows = store.query_outcomes(q)
        assert len(rows) == 5 and sum(r.num_converted for r in rows) > 0
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            store.query_outcomes(q)
            times.append((time.perf_counter() - t0) * 1000)
        store.close()
    print(f"descriptors_texts_per_s_median={d_rate:.0f}")
    print(f"self_consistency_sets_per_s_median={s_rate:.0f}")
    print(f"spans={n} outcome_metrics_by_model_7d_median_ms={statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
