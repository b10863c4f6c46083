"""Calibrate the relevance evaluator: fit P(relevant | cosine) on the tuning part of a labelled set.

    python bench/calibrate_relevance.py [--model all-MiniLM-L6-v2] [path/to/relevance.jsonl]

Rows whose position is 2 mod 3 are held out of the fit; the script prints the logistic
(Platt) parameters to put in ``_relevance.py`` (``_PLATT``, per embedding model: by default the
one ``relevance`` uses) and the balanced accuracy, precision and recall at the default
threshold (score >= 0.7) on the tuning and held-out parts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sightline.evals import MODELS, default_embedder
from sightline.evals.evaluators import Relevance

DATA = Path(__file__).resolve().parent.parent / "tests" / "evals" / "data" / "relevance.jsonl"


def fit_platt(x: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """Logistic regression of y on x (Newton's method), with a small L2 penalty."""
    a, b = 1.0, 0.0
    lam = 1e-3
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * x + b)))
        w = p * (1 - p)
        g = np.array([np.sum((p - y) * x) + lam * a, np.sum(p - y)])
        h = np.array([[np.sum(w * x * x) + lam, np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a), float(b)


def report(name: str, pred: np.ndarray, y: np.ndarray) -> None:
    tp = int(np.sum(pred & y))
    tn = int(np.sum(~pred & ~y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tpr = tp / max(tp + fn, 1)
    tnr = tn / max(tn + fp, 1)
    prec = tp / max(tp + fp, 1)
    print(
        f"{name}: n={len(y)} balanced_accuracy={(tpr + tnr) / 2:.3f} "
        f"precision={prec:.3f} recall={tpr:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", nargs="?", type=Path, default=DATA)
    ap.add_argument("--model", choices=MODELS, default=Relevance.default_model)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.path.read_text().splitlines() if line.strip()]
    emb = default_embedder(args.model)
    print(f"model={args.model}")
    q = emb.embed([r["question"] for r in rows])
    a = emb.embed([r["answer"] for r in rows])
    cos = np.sum(q * a, axis=1)
    y = np.array([bool(r["relevant"]) for r in rows])
    held = np.arange(len(rows)) % 3 == 2
    pa, pb = fit_platt(cos[~held], y[~held].astype(float))
    print(f"platt a={pa:.3f} b={pb:.3f} (score = 1 / (1 + exp(-(a * cosine + b))))")
    print(f"score 0.7 <=> cosine {(np.log(0.7 / 0.3) - pb) / pa:.3f}")
    score = 1 / (1 + np.exp(-(pa * cos + pb)))
    report("tuning", score[~held] >= 0.7, y[~held])
    report("held-out", score[held] >= 0.7, y[held])


if __name__ == "__main__":
    main()
