"""Faithfulness throughput: spans/s, batches of 64 spans with 3 retrieved documents each.

Two workloads, each with a fresh embedder: `cold` gives every span its own documents (no
embedding cache hits, the worst case), `kb` draws documents from a knowledge base of 200
(retrieval returns the same documents again and again, as in a RAG application). Each answer
has claims the lexical checks settle (copied words, a claim sharing no word with the documents)
and one paraphrase that only the embedding step can judge, so every span sends context
sentences it has never seen to the model. Prints medians over batches and the texts embedded
per span.

    python bench/faithfulness_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from sightline.evals import Embedder, EvalCase
from sightline.evals.evaluators import Faithfulness

_TOPICS = ["refund", "shipping", "warranty", "password", "invoice", "seat", "plan", "export"]


def _doc(rng: random.Random, k: int) -> str:
    t = rng.choice(_TOPICS)
    return (
        f"Document {k}: the {t} policy for tier {k % 7} allows {rng.randint(2, 90)} days. "
        f"Customers on the {t} plan number {k} can request changes from the {t} settings page. "
        f"Requests over {rng.randint(1, 9)} items are handled by the {t} team within "
        f"{rng.randint(1, 5)} business days."
    )


def _case(rng: random.Random, docs: list[str]) -> EvalCase:
    d = docs[0]
    days = d.split("allows ")[1].split(" ")[0]
    topic = d.split("the ")[1].split(" ")[0]
    answer = (
        f"The policy allows {days} days. You can request changes from the settings page. "
        "Large requests are handled within a few business days, and a manager approves them. "
        f"Bigger orders take the {topic} people a couple of working days."
    )
    return EvalCase(question="What does the policy allow?", answer=answer, contexts=tuple(docs))


def run(num_batches: int, batch_size: int, kb_size: int | None) -> tuple[float, float, float]:
    """Median spans/s over batches, texts embedded per span, and CPU ms per span.

    The CPU time (all threads of this process) is steadier than wall time on a shared
    machine: other processes slow the wall clock, not the work done.
    """
    rng = random.Random(7)
    embedder = Embedder()
    f = Faithfulness(embedder=embedder)
    kb = [_doc(rng, k) for k in range(kb_size)] if kb_size else []
    counter = iter(range(10**9))
    rates = []
    cpu0 = time.process_time()
    for _ in range(num_batches):
        cases = []
        for _ in range(batch_size):
            docs = rng.sample(kb, 3) if kb else [_doc(rng, next(counter)) for _ in range(3)]
            cases.append(_case(rng, docs))
        t0 = time.perf_counter()
        f.evaluate(cases)
        rates.append(batch_size / (time.perf_counter() - t0))
    num_spans = num_batches * batch_size
    cpu_ms = (time.process_time() - cpu0) * 1000 / num_spans
    return statistics.median(rates), embedder.num_embedded / num_spans, cpu_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 batches per workload")
    args = ap.parse_args()
    n = 2 if args.quick else 10
    for name, kb_size in (("cold", None), ("kb200", 200)):
        rate, texts, cpu_ms = run(n if kb_size is None else n + 2, 64, kb_size)
        print(f"faithfulness_{name}_spans_per_s_median={rate:.0f}")
        print(f"faithfulness_{name}_texts_embedded_per_span={texts:.2f}")
        print(f"faithfulness_{name}_cpu_ms_per_span={cpu_ms:.1f}")


if __name__ == "__main__":
    main()
