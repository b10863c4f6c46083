"""Would an NLI model's contradiction check help `faithfulness`? Tuning rows and dev answers only.

Runs faithfulness (the shipped version) on the *tuning* two thirds of
tests/evals/data/faithfulness.jsonl and on the supported dev answers of
bench/faithfulness_dev.jsonl (written for tuning scenarios), then asks the NLI model in
``MODEL`` (an :class:`~sightline.evals.evaluators.OnnxNli` folder, e.g. the output of
``bench/nli_train.py``) about every claim the shipped checks let through, against its ``k``
context sentences sharing most words with it. A claim fails when the model's contradiction
probability reaches ``tc`` (and its entailment stays under 0.5). Prints balanced accuracy on
the tuning rows and the dev answers flagged, for each ``k`` and ``tc``, next to the shipped
evaluator's own figures. Held-out rows are never read.

    python bench/nli_check.py /tmp/nli-minilm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sightline.evals import EvalCase
from sightline.evals.evaluators import Faithfulness, OnnxNli

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_accuracy import load  # noqa: E402

DEV = Path(__file__).resolve().parent / "faithfulness_dev.jsonl"


class _Recorder(Faithfulness):
    """Faithfulness that keeps, per case, its claims and the context they were checked against."""

    prepared: list[Any]

    def _resolve_open_claims(self, prepared: list[Any]) -> None:
        super()._resolve_open_claims(prepared)
        self.prepared = prepared


def _closest(claim: Any, support: Any, k: int) -> list[str]:
    overlap = [
        len(claim.stems & s) + len(claim.values & v)
        for s, v in zip(support.sentence_stems, support.sentence_values, strict=True)
    ]
    order = sorted((i for i, n in enumerate(overlap) if n > 0), key=lambda i: -overlap[i])
    return [support.sentences[i] for i in order[:k]]


def _claims(cases: list[EvalCase], k: int) -> list[list[tuple[bool, str, list[str]]]]:
    """Per case: (failed by the shipped checks, claim, its k closest context sentences)."""
    f = _Recorder()
    f.evaluate(cases)
    return [
        [(c.reason is not None, c.text, _closest(c, p[1], k)) for c in p[0]] for p in f.prepared
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="an OnnxNli folder: model.onnx, tokenizer.json, config.json")
    args = ap.parse_args()
    tune = [r for r in load("faithfulness") if r["split"] == "tune"]
    scenario = {r["group"]: r for r in tune}
    dev = [json.loads(line) for line in DEV.read_text().splitlines()]
    rows = [(r, r["question"], r["contexts"], r["answer"]) for r in tune] + [
        (r, scenario[r["group"]]["question"], scenario[r["group"]]["contexts"], r["answer"])
        for r in dev
    ]
    cases = [EvalCase(question=q, answer=a, contexts=tuple(c)) for _, q, c, a in rows]
    claims = _claims(cases, 3)
    nli = OnnxNli(args.model)
    pairs = [(s, text) for case in claims for failed, text, near in case if not failed
             for s in near]  # fmt: skip
    scores = iter(nli.score(pairs))
    judged = [
        [(failed, [] if failed else [next(scores) for _ in near]) for failed, _, near in case]
        for case in claims
    ]

    def measure(k: int, tc: float) -> tuple[float, int]:
        tp = fn = tn = fp = dev_flagged = 0
        for (row, *_), case in zip(rows, judged, strict=True):
            flagged = any(
                failed or any(c >= tc and e < 0.5 for e, c in nli_scores[:k])
                for failed, nli_scores in case
            )
            if "split" not in row:
                dev_flagged += flagged
            elif row["label"] == "hallucination":
                tp, fn = tp + flagged, fn + (not flagged)
            else:
                fp, tn = fp + flagged, tn + (not flagged)
        return (tp / (tp + fn) + tn / (tn + fp)) / 2, dev_flagged

    n = len(dev)
    ba, flagged = measure(1, 2.0)
    print(f"shipped faithfulness: tune balanced accuracy {ba:.3f}, dev flagged {flagged}/{n}")
    for k in (1, 2, 3):
        for tc in (0.5, 0.7, 0.8, 0.9, 0.95):
            ba, flagged = measure(k, tc)
            print(f"k={k} tc={tc}: tune balanced accuracy {ba:.3f}, dev flagged {flagged}/{n}")


if __name__ == "__main__":
    main()
