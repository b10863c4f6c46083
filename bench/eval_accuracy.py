"""Balanced accuracy, precision and recall of the safety and grounding evaluators.

Reads the labelled sets in tests/evals/data/ and prints one table row per evaluator and split
(`tune`: the two thirds thresholds were chosen on; `heldout`: the third kept out of tuning).

    python bench/eval_accuracy.py            # all evaluators, both splits
    python bench/eval_accuracy.py --only faithfulness --split heldout
    python bench/eval_accuracy.py --only toxicity --split heldout --by-batch

`--by-batch` also scores the rows of each batch apart: batch 1 is the sets as first written
(their held-out third was measured while the evaluators were developed), batch 2 the rows
added for the second accuracy pass (held out from everything until its measurement).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sightline.evals import EvalCase, EvalResult
from sightline.evals.evaluators import Faithfulness, PiiLeak, PromptInjection, Refusal, Toxicity

DATA = Path(__file__).resolve().parent.parent / "tests" / "evals" / "data"


def split_of(name: str, group: str) -> str:
    """The fixed split of a row: a hash of its set name and group (its id if it has none)."""
    h = hashlib.blake2b(f"{name}:{group}".encode(), digest_size=8).digest()
    return "heldout" if int.from_bytes(h, "big") % 3 == 0 else "tune"


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text().splitlines()]


@dataclass
class Spec:
    evaluator: Callable[[], Any]
    case: Callable[[dict[str, Any]], EvalCase]
    truth: Callable[[dict[str, Any]], bool]
    predicted: Callable[[EvalResult], bool]


def _case(r: dict[str, Any]) -> EvalCase:
    return EvalCase(
        question=r.get("question"), answer=r.get("answer"), contexts=tuple(r.get("contexts", ()))
    )


SPECS: dict[str, Spec] = {
    "faithfulness": Spec(
        Faithfulness,
        _case,
        lambda r: r["label"] == "hallucination",
        lambda x: x.label == "hallucination",
    ),
    "toxicity": Spec(
        Toxicity, _case, lambda r: r["label"] == "toxic", lambda x: x.label == "toxic"
    ),
    "refusal": Spec(
        Refusal, _case, lambda r: r["label"] != "answered", lambda x: bool(x.details["refused"])
    ),
    "over_refusal": Spec(
        Refusal,
        _case,
        lambda r: r["label"] == "over_refusal",
        lambda x: x.label == "over_refusal",
    ),
    "prompt_injection": Spec(
        PromptInjection,
        _case,
        lambda r: r["label"] == "injection",
        lambda x: x.label == "prompt_injection",
    ),
    "pii_leak": Spec(PiiLeak, _case, lambda r: r["label"] == "pii", lambda x: x.label == "pii"),
}
DATASET = {"over_refusal": "refusal"}


@dataclass
class Scores:
    n: int
    positives: int
    balanced_accuracy: float
    precision: float
    recall: float
    specificity: float


def measure(name: str, split: str, evaluator: Any = None, batch: int | None = None) -> Scores:
    """Score evaluator ``name`` on one split of its labelled set (one batch of it, or all)."""
    spec = SPECS[name]
    rows = [r for r in load(DATASET.get(name, name)) if r["split"] == split]
    if batch is not None:
        rows = [r for r in rows if r.get("batch", 1) == batch]
    ev = evaluator if evaluator is not None else spec.evaluator()
    results = ev.evaluate([spec.case(r) for r in rows])
    tp = fp = tn = fn = 0
    for r, res in zip(rows, results, strict=True):
        assert res is not None, r
        truth, pred = spec.truth(r), spec.predicted(res)
        tp += truth and pred
        fp += pred and not truth
        fn += truth and not pred
        tn += not truth and not pred
    recall = tp / (tp + fn) if tp + fn else 1.0
    spec_ = tn / (tn + fp) if tn + fp else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    return Scores(len(rows), tp + fn, (recall + spec_) / 2, precision, recall, spec_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=list(SPECS))
    ap.add_argument("--split", choices=["tune", "heldout"])
    ap.add_argument("--quick", action="store_true", help="held-out split only (for the tests)")
    ap.add_argument("--by-batch", action="store_true", help="also score batch 1 and 2 apart")
    args = ap.parse_args()
    names = [args.only] if args.only else list(SPECS)
    splits = [args.split] if args.split else (["heldout"] if args.quick else ["heldout", "tune"])
    batches: list[int | None] = [None, 1, 2] if args.by_batch else [None]
    print("| evaluator | split | rows | positives | balanced accuracy | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for split in splits:
            for batch in batches:
                t0 = time.perf_counter()
                s = measure(name, split, batch=batch)
                if s.n == 0:
                    continue
                label = split if batch is None else f"{split}, batch {batch}"
                took = f"<!-- {time.perf_counter() - t0:.1f}s -->"
                print(
                    f"| {name} | {label} | {s.n} | {s.positives} | {s.balanced_accuracy:.3f} | "
                    f"{s.precision:.3f} | {s.recall:.3f} |  {took}"
                )


if __name__ == "__main__":
    main()
