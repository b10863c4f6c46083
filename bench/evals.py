"""Evaluated spans/s of the embedding-based evaluators on realistic RAG cases.

    python bench/evals.py            # 3,000 cases, 3 runs each (make bench)
    python bench/evals.py --quick    # 300 cases, 1 run (make test)

Cases look like production RAG traffic: questions drawn from a pool of 60 (users ask the same
things in a few phrasings), 3 retrieved documents each from a corpus of a few dozen chunks (the
same chunks come back again and again), and an answer that is unique per span (the worst case);
the ``_repeated_answers`` figures use the demo app's answers, retrieved chunks that repeat.
Each run uses a fresh embedder (cold cache) and evaluates in batches of 256, as the online
runner does. The baselines, measured in the same process, are the embedder alone on unique
texts: short sentences, and the cases' answers, for each embedding model. Each evaluator runs
on the model it uses by default (``relevance``: paraphrase-MiniLM-L3-v2, the others
all-MiniLM-L6-v2); ``relevance_l6`` is ``relevance`` with ``model="all-MiniLM-L6-v2"``.
Evaluators are found through the registry: faithfulness is measured when it is installed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

from sightline._logging import configure_logging
from sightline.demo._app import QUESTIONS, SupportBot
from sightline.evals import (
    MODEL_L6,
    MODELS,
    Embedder,
    EvalCase,
    available_evaluators,
    default_evaluator_names,
    evaluator_class,
)

EMBEDDING_EVALUATORS = ("relevance", "context_relevance", "faithfulness")
_PHRASINGS = ("{q}", "Hi, {q}", "{q} Thanks!", "quick question: {q}", "{q} (asking for my team)")


def make_cases(n: int, seed: int = 1, *, unique_answers: bool = True) -> list[EvalCase]:
    from opentelemetry import trace

    rng = random.Random(seed)
    bot = SupportBot(trace.get_tracer("bench"))
    pool = [p.format(q=q) for q in QUESTIONS for p in _PHRASINGS]
    cases = []
    for i in range(n):
        q = rng.choice(pool)
        docs = [c.text for _, c in bot._retrieve(q)]
        answer = docs[0]
        if unique_answers:
            answer += f" Your ticket number is {rng.randint(1000, 99999)}."
        if rng.random() < 0.1:
            answer += " Also, our office is on the Moon."
        cases.append(EvalCase(question=q, answer=answer, contexts=tuple(docs), case_id=str(i)))
    return cases


def build(name: str, embs: dict[str, Embedder], model: str | None = None) -> Any:
    """The evaluator ``name`` on a fresh embedder of its model (shared through ``embs``)."""
    cls = evaluator_class(name)
    model = model or getattr(cls, "default_model", MODEL_L6)
    if model not in embs:
        embs[model] = Embedder(model=model, threads=2)
    try:
        return cls(embedder=embs[model])
    except TypeError:
        return cls()


def spans_per_s(
    name: str, cases: list[EvalCase], batch: int = 256, model: str | None = None
) -> tuple[float, float]:
    """Spans/s (wall clock) and CPU ms per span (all threads of this process).

    The CPU time is what the work costs whatever else runs on the machine; on an idle
    machine with 2 cores the rate is at most ``2000 / cpu_ms`` spans/s.
    """
    ev = build(name, {}, model)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(0, len(cases), batch):
        ev.evaluate(cases[b : b + batch])
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(cases) / took, cpu * 1000 / len(cases)


def embedder_texts_per_s(texts: list[str], model: str = MODEL_L6) -> tuple[float, float]:
    """Texts/s and CPU ms per text of the embedder alone."""
    emb = Embedder(model=model, threads=2, cache_size=0)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(0, len(texts), 256):
        emb.embed(texts[b : b + 256])
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(texts) / took, cpu * 1000 / len(texts)


def runner_spans_per_s(cases: list[EvalCase], names: list[str]) -> tuple[float, float]:
    """The online runner end to end on a DuckDB store: read, build cases from traces, evaluate
    with ``names``, append scores and the cursor. Spans/s and CPU ms per span."""
    import secrets
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from sightline.evals import EvalRunner, RunnerOptions
    from sightline.store import DuckDBStore
    from sightline.store._arrow import records_to_table

    t0_ns = int(datetime.now(UTC).timestamp() * 1e9)
    recs: list[dict[str, Any]] = []
    for i, c in enumerate(cases):
        tid = secrets.token_hex(16)
        base = {
            "project_id": "bench",
            "trace_id": tid,
            "status": "ok",
            "duration_ms": 1.0,
            "session_id": f"s{i % 500}",
        }
        start = t0_ns + i * 1_000_000
        root, ret, llm = (f"{3 * i + k + 1:016x}" for k in range(3))
        recs += [
            {
                **base,
                "span_id": root,
                "name": "rag",
                "kind": "chain",
                "start_ns": start,
                "end_ns": start + 900_000,
                "input": c.question,
            },
            {
                **base,
                "span_id": ret,
                "parent_span_id": root,
                "name": "retrieve",
                "kind": "retrieval",
                "start_ns": start + 1,
                "end_ns": start + 2,
                "documents": [
                    {"id": str(k), "content": d, "score": None, "metadata": None}
                    for k, d in enumerate(c.contexts)
                ],
            },
            {
                **base,
                "span_id": llm,
                "parent_span_id": root,
                "name": "chat",
                "kind": "llm",
                "start_ns": start + 3,
                "end_ns": start + 800_000,
                "model": "gpt-4o-mini",
                "input": f"Context: ...\n\nQuestion: {c.question}",
                "output": c.answer,
            },
        ]
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        store.migrate()
        for b in range(0, len(recs), 3000):
            store.insert_batches([records_to_table(recs[b : b + 3000])])
        embs: dict[str, Embedder] = {}
        runner = EvalRunner(
            store, [build(n, embs) for n in names], options=RunnerOptions(grace_s=0.0)
        )
        t0, c0 = time.perf_counter(), time.process_time()
        while runner.step():
            pass
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
    return runner.num_spans / took, cpu * 1000 / max(runner.num_spans, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="300 cases and one run")
    args = ap.parse_args()
    configure_logging("warning", "console")
    n, runs = (300, 1) if args.quick else (3000, 3)
    cases = make_cases(n)
    # Baselines: the embedder alone on short unique sentences, and on these cases' answers
    # (unique per span: the one embedding per span that no cache can save).
    m = min(n, 1000)  # enough texts for a stable rate
    short = [f"Unique support sentence number {i} about invoices and refunds." for i in range(m)]
    answers = [str(c.answer) for c in cases[:m]]
    print(f"load_average_1m={os.getloadavg()[0]:.1f} cpus={os.cpu_count()}")
    for model in MODELS:
        for label, texts in (("texts", short), ("answers", answers)):
            got = [embedder_texts_per_s(texts, model) for _ in range(runs)]
            rate = statistics.median(r for r, _ in got)
            cpu = statistics.median(c for _, c in got)
            print(
                f"baseline embedder_unique_{label}_per_s_median={rate:.0f} "
                f"cpu_ms_per_text_median={cpu:.2f} model={model}"
            )
    # The demo app's traffic: its answers are retrieved chunks, so they repeat too.
    demo = make_cases(n, unique_answers=False)
    # relevance_l6: relevance on the L6 model (its option), the figure before the L3 default.
    variants = [(x, x, None) for x in EMBEDDING_EVALUATORS]
    variants.insert(1, ("relevance_l6", "relevance", MODEL_L6))
    for shown, name, model in variants:
        if name not in available_evaluators():
            print(f"{name}: not installed, skipped")
            continue
        used = model or getattr(evaluator_class(name), "default_model", MODEL_L6)
        for label, cs in (("", cases), ("_repeated_answers", demo)):
            got = [spans_per_s(name, cs, model=model) for _ in range(runs)]
            rates = [r for r, _ in got]
            cpu = statistics.median(c for _, c in got)
            print(
                f"{shown}{label}_spans_per_s_median={statistics.median(rates):.0f} "
                f"runs={' '.join(f'{r:.0f}' for r in rates)} cpu_ms_per_span_median={cpu:.2f} "
                f"cases={n} docs_per_case=3 model={used}"
            )
    # The online runner with the default evaluators, store reads and writes included.
    names = [
        x for x in default_evaluator_names() if x in EMBEDDING_EVALUATORS + ("user_correction",)
    ]
    for label, cs in (("", cases), ("_repeated_answers", demo)):
        got = [runner_spans_per_s(cs, names) for _ in range(runs)]
        rates = [r for r, _ in got]
        cpu = statistics.median(c for _, c in got)
        print(
            f"runner{label}_spans_per_s_median={statistics.median(rates):.0f} "
            f"runs={' '.join(f'{r:.0f}' for r in rates)} cpu_ms_per_span_median={cpu:.2f} "
            f"evaluators={','.join(names)}"
        )
    print(f"load_average_1m_at_end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
