"""Train the toxicity head: logistic regression on MiniLM embeddings of labelled answers.

Training data: the `tune` rows of tests/evals/data/toxicity.jsonl (never the held-out third)
and the exemplars of sightline/evals/evaluators/_exemplars.py (TOXIC, TOXIC_MORE, BENIGN).
Full-batch gradient descent from zero, so the result is deterministic; it is written to
src/sightline/evals/evaluators/_toxicity_head.json, which the Toxicity evaluator loads.

    python bench/train_toxicity_head.py           # retrain and write the head
    python bench/train_toxicity_head.py --check   # retrain, compare with the shipped head
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from eval_accuracy import load
from sightline.evals import Embedder
from sightline.evals.evaluators import _exemplars

HEAD = (
    Path(__file__).resolve().parent.parent
    / "src"
    / "sightline"
    / "evals"
    / "evaluators"
    / "_toxicity_head.json"
)
L2 = 0.3
"""Chosen by 5-fold cross-validation on the training texts (0.1-1 scored alike)."""
STEPS = 3000
LEARNING_RATE = 0.5


def training_set() -> tuple[list[str], list[int]]:
    rows = [r for r in load("toxicity") if r["split"] == "tune"]
    texts = [r["answer"] for r in rows]
    labels = [int(r["label"] == "toxic") for r in rows]
    for group, label in ((_exemplars.TOXIC, 1), (_exemplars.TOXIC_MORE, 1), (_exemplars.BENIGN, 0)):
        texts += group
        labels += [label] * len(group)
    return texts, labels


def train(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    w = np.zeros(vectors.shape[1])
    b = 0.0
    n = len(labels)
    for _ in range(STEPS):
        p = 1 / (1 + np.exp(-(vectors @ w + b)))
        g = p - labels
        w -= LEARNING_RATE * (vectors.T @ g / n + L2 * w / n)
        b -= LEARNING_RATE * float(g.mean())
    return w, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped head")
    args = ap.parse_args()
    texts, labels = training_set()
    vectors = Embedder(threads=1).embed(texts).astype(np.float64)
    w, b = train(vectors, np.array(labels, dtype=np.float64))
    head = {
        "model": "all-MiniLM-L6-v2 (int8 ONNX), mean-pooled, L2-normalised",
        "trained_on": f"{len(texts)} texts: toxicity.jsonl tune split + _exemplars",
        "l2": L2,
        "bias": round(b, 6),
        "weights": [round(float(x), 6) for x in w],
    }
    if args.check:
        shipped = json.loads(HEAD.read_text())
        diff = max(abs(a - c) for a, c in zip(shipped["weights"], head["weights"], strict=True))
        diff = max(diff, abs(shipped["bias"] - head["bias"]))
        print(f"toxicity_head_max_abs_diff={diff:.6f}")
        sys.exit(0 if diff < 1e-3 else 1)
    HEAD.write_text(json.dumps(head) + "\n")
    print(f"wrote {HEAD} ({len(texts)} texts, {sum(labels)} toxic)")


if __name__ == "__main__":
    main()
