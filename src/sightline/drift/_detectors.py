"""Drift detectors: pure functions of a baseline sample and a current sample.

Every detector returns a :class:`Detection` with a score, the threshold it is compared with, a
p-value from a permutation test, whether it fired, and details (examples) that explain it. The
permutation tests make the false-alarm rate honest: when both samples come from the same
distribution, the window labels are exchangeable, so ``p < alpha`` happens with probability at
most ``alpha`` whatever the data (tests/drift/test_honesty.py checks it over 100 trials).
docs/drift.md gives each detector's math.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Detection",
    "categorical_test",
    "emerging_topics",
    "embedding_mmd",
    "js_divergence",
    "kl_divergence",
    "psi",
    "psi_test",
    "semantic_same_input",
    "token_distribution",
]

Array = npt.NDArray[np.float64]
_WORD = re.compile(r"[a-z0-9']+")


@dataclasses.dataclass(frozen=True, slots=True)
class Detection:
    """What one detector found."""

    detector: str
    feature: str
    score: float | None
    threshold: float | None
    p_value: float | None
    fired: bool
    num_baseline: int
    num_current: int
    status: str = "ok"
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


def _insufficient(detector: str, feature: str, nb: int, nc: int, need: int) -> Detection:
    return Detection(
        detector,
        feature,
        None,
        None,
        None,
        False,
        nb,
        nc,
        "insufficient_data",
        {"reason": f"need at least {need} samples in each window"},
    )


def _p_value(observed: float, null: Array) -> float:
    # The observed labelling counts as one permutation: p is never 0 (Phipson & Smyth 2010).
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def _perms(rng: np.random.Generator, n: int, nb: int, num: int) -> npt.NDArray[np.int64]:
    """``num`` random permutations of range(n); the first ``nb`` of each are the baseline."""
    return np.argsort(rng.random((num, n)), axis=1)


# -- (4) PSI -----------------------------------------------------------------------------------


def psi(baseline: Array, current: Array, *, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index with ``bins`` quantile bins of the baseline.

    PSI = Σ (cᵢ − bᵢ)·ln(cᵢ / bᵢ) over bins, shares floored at ``eps``. Rule of thumb: < 0.1
    stable, 0.1–0.2 moderate, > 0.2 a significant shift. When the top quantile is the
    baseline's maximum (ties), values above the maximum get a bin of their own.

    Example:
        >>> round(psi(np.full(100, 1.0), np.full(100, 500.0)), 2)
        18.42
    """
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, bins + 1)[1:-1]))
    top = float(np.max(baseline))
    if edges[-1] == top:
        # The top bin [edges[-1], inf) would hold only the baseline's maximum, a tied value
        # (a constant feature, a cap): values above it get a bin of their own, else a rise
        # past the baseline's range lands in the same bin as the baseline and PSI stays 0.
        edges = np.append(edges, np.nextafter(top, np.inf))
    b = np.bincount(np.searchsorted(edges, baseline, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    pb = np.maximum(b / max(len(baseline), 1), eps)
    pc = np.maximum(c / max(len(current), 1), eps)
    return float(np.sum((pc - pb) * np.log(pc / pb)))


def psi_test(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    feature: str,
    threshold: float = 0.2,
    alpha: float = 0.01,
    permutations: int = 200,
    min_samples: int = 30,
    seed: int = 0,
) -> Detection:
    """PSI of one numeric feature, firing when PSI ≥ ``threshold`` and p < ``alpha``."""
    b = np.asarray([x for x in baseline if x is not None and math.isfinite(x)], dtype=np.float64)
    c = np.asarray([x for x in current if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(b) < min_samples or len(c) < min_samples:
        return _insufficient("psi", feature, len(b), len(c), min_samples)
    observed = psi(b, c)
    pooled = np.concatenate([b, c])
    rng = np.random.default_rng(seed)
    null = np.array(
        [
            psi(pooled[p[: len(b)]], pooled[p[len(b) :]])
            for p in _perms(rng, len(pooled), len(b), permutations)
        ]
    )
    p = _p_value(observed, null)
    return Detection(
        "psi",
        feature,
        observed,
        threshold,
        p,
        observed >= threshold and p < alpha,
        len(b),
        len(c),
        details={
            "baseline_median": float(np.median(b)),
            "current_median": float(np.median(c)),
            "baseline_p90": float(np.quantile(b, 0.9)),
            "current_p90": float(np.quantile(c, 0.9)),
        },
    )


# -- (3) output token distribution -------------------------------------------------------------


def kl_divergence(p: Array, q: Array) -> float:
    """KL(p ‖ q) in bits; both strictly positive and summing to 1."""
    return float(np.sum(p * np.log2(p / q)))


def js_divergence(p: Array, q: Array) -> float:
    """Jensen–Shannon divergence in bits: symmetric, bounded by 1."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_distribution(
    baseline: Sequence[str],
    current: Sequence[str],
    *,
    feature: str = "response",
    smoothing: float = 0.5,
    vocab_size: int = 2000,
    min_js: float = 0.02,
    alpha: float = 0.01,
    permutations: int = 200,
    min_samples: int = 30,
    seed: int = 0,
) -> Detection:
    """Word distribution of the current texts against the baseline's: JS (score) and KL.

    Counts are additively smoothed (``smoothing`` per word of the pooled top ``vocab_size``
    words, plus one bucket for the rest). Fires when JS ≥ ``min_js`` and p < ``alpha`` (the
    permutation test shuffles whole texts between the windows).
    """
    if len(baseline) < min_samples or len(current) < min_samples:
        return _insufficient(
            "token_distribution", feature, len(baseline), len(current), min_samples
        )
    docs = [Counter(_tokens(t)) for t in (*baseline, *current)]
    total: Counter[str] = Counter()
    for d in docs:
        total.update(d)
    vocab = [w for w, _ in total.most_common(vocab_size)]
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.zeros((len(docs), len(vocab) + 1), dtype=np.float64)
    for i, d in enumerate(docs):
        for w, n in d.items():
            counts[i, index.get(w, len(vocab))] += n
    nb = len(baseline)

    def dists(cb: Array, cc: Array) -> tuple[Array, Array]:
        pb = (cb + smoothing) / (cb.sum(axis=-1, keepdims=True) + smoothing * cb.shape[-1])
        pc = (cc + smoothing) / (cc.sum(axis=-1, keepdims=True) + smoothing * cc.shape[-1])
        return pb, pc

    pb, pc = dists(counts[:nb].sum(axis=0), counts[nb:].sum(axis=0))
    observed = js_divergence(pc, pb)
    kl = kl_divergence(pc, pb)
    rng = np.random.default_rng(seed)
    perms = _perms(rng, len(docs), nb, permutations)
    member = np.zeros((permutations, len(docs)))
    np.put_along_axis(member, perms[:, :nb], 1.0, axis=1)
    cbs = member @ counts
    ccs = counts.sum(axis=0)[None, :] - cbs
    qb, qc = dists(cbs, ccs)
    m = 0.5 * (qb + qc)
    null = 0.5 * np.sum(qb * np.log2(qb / m), axis=1) + 0.5 * np.sum(qc * np.log2(qc / m), axis=1)
    p = _p_value(observed, null)
    # The words whose share changed most explain the score.
    words = [*vocab, "<other>"]
    contrib = pc * np.log2(pc / pb)
    rising = [
        {"word": words[i], "baseline_share": float(pb[i]), "current_share": float(pc[i])}
        for i in np.argsort(-contrib)[:8]
    ]
    falling = [
        {"word": words[i], "baseline_share": float(pb[i]), "current_share": float(pc[i])}
        for i in np.argsort(pc / pb)[:8]
    ]
    return Detection(
        "token_distribution",
        feature,
        observed,
        min_js,
        p,
        observed >= min_js and p < alpha,
        nb,
        len(current),
        details={"kl_bits": kl, "rising_words": rising, "falling_words": falling},
    )


# -- (6) descriptors: categorical shares (language, refusal, JSON, top terms) ---------------------


def categorical_test(
    baseline: Sequence[Sequence[str]],
    current: Sequence[Sequence[str]],
    *,
    feature: str,
    smoothing: float = 0.5,
    min_js: float = 0.02,
    alpha: float = 0.01,
    permutations: int = 200,
    min_samples: int = 30,
    seed: int = 0,
) -> Detection:
    """JS divergence of the category shares of two windows; each sample has ≥ 0 categories.

    A sample's labels (its language; ``["refusal"]`` or ``["answer"]``; its top terms) are
    counted, smoothed like :func:`token_distribution`, and compared; the permutation test
    shuffles whole samples between windows. Fires when JS ≥ ``min_js`` and p < ``alpha``.
    """
    if len(baseline) < min_samples or len(current) < min_samples:
        return _insufficient("descriptors", feature, len(baseline), len(current), min_samples)
    samples = [*baseline, *current]
    total: Counter[str] = Counter()
    for labels in samples:
        total.update(labels)
    cats = [c for c, _ in total.most_common(500)]
    index = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((len(samples), len(cats) + 1), dtype=np.float64)
    for i, labels in enumerate(samples):
        for c in labels:
            counts[i, index.get(c, len(cats))] += 1
    nb = len(baseline)

    def shares(c: Array) -> Array:
        out: Array = (c + smoothing) / (c.sum(axis=-1, keepdims=True) + smoothing * c.shape[-1])
        return out

    pb, pc = shares(counts[:nb].sum(axis=0)), shares(counts[nb:].sum(axis=0))
    observed = js_divergence(pc, pb)
    rng = np.random.default_rng(seed)
    perms = _perms(rng, len(samples), nb, permutations)
    member = np.zeros((permutations, len(samples)))
    np.put_along_axis(member, perms[:, :nb], 1.0, axis=1)
    cbs = member @ counts
    qb, qc = shares(cbs), shares(counts.sum(axis=0)[None, :] - cbs)
    m = 0.5 * (qb + qc)
    null = 0.5 * np.sum(qb * np.log2(qb / m), axis=1) + 0.5 * np.sum(qc * np.log2(qc / m), axis=1)
    p = _p_value(observed, null)
    names = [*cats, "<other>"]
    order = np.argsort(-np.abs(pc - pb))[:8]
    return Detection(
        "descriptors",
        feature,
        observed,
        min_js,
        p,
        observed >= min_js and p < alpha,
        nb,
        len(current),
        details={
            "changed": [
                {"value": names[i], "baseline_share": float(pb[i]), "current_share": float(pc[i])}
                for i in order
            ]
        },
    )


# -- (2) embedding distribution: MMD with a permutation test -----------------------------------


def embedding_mmd(
    baseline: Array,
    current: Array,
    *,
    feature: str,
    alpha: float = 0.01,
    permutations: int = 200,
    min_samples: int = 20,
    seed: int = 0,
    examples: Sequence[str] | None = None,
) -> Detection:
    """Maximum mean discrepancy between two sets of embeddings (RBF kernel).

    MMD² = mean k(b, b') + mean k(c, c') − 2 mean k(b, c), with k(x, y) = exp(−‖x − y‖² / 2σ²)
    and σ the median pairwise distance of the pooled sample. The threshold reported is the
    permutation null's 1 − alpha quantile; fires when p < alpha. ``examples`` (texts of the
    current sample) pick the current items farthest from the baseline as the explanation.
    """
    nb, nc = len(baseline), len(current)
    if nb < min_samples or nc < min_samples:
        return _insufficient("embedding_mmd", feature, nb, nc, min_samples)
    x = np.concatenate([baseline, current]).astype(np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    iu = np.triu_indices(len(x), 1)
    sigma2 = float(np.median(d2[iu])) or 1.0
    k = np.exp(-d2 / sigma2)  # 2σ² with σ² = median/2: the usual median heuristic

    def mmd2(w: Array) -> Array:
        out: Array = np.sum((w @ k) * w, axis=-1)
        return out

    w0 = np.concatenate([np.full(nb, 1.0 / nb), np.full(nc, -1.0 / nc)])
    observed = float(mmd2(w0))
    rng = np.random.default_rng(seed)
    perms = _perms(rng, len(x), nb, permutations)
    w = np.full((permutations, len(x)), -1.0 / nc)
    np.put_along_axis(w, perms[:, :nb], 1.0 / nb, axis=1)
    null = mmd2(w)
    p = _p_value(observed, null)
    details: dict[str, Any] = {"sigma2": sigma2}
    if examples is not None:
        # Current items whose kernel similarity to the baseline is lowest, relative to the
        # current sample: what the baseline did not have.
        score = k[nb:, :nb].mean(axis=1) - k[nb:, nb:].mean(axis=1)
        far = (examples[i][:300] for i in np.argsort(score))
        details["examples"] = list(dict.fromkeys(far))[:5]
    return Detection(
        "embedding_mmd",
        feature,
        observed,
        float(np.quantile(null, 1 - alpha)),
        p,
        p < alpha,
        nb,
        nc,
        details=details,
    )


# -- (1) semantic drift of outputs for the same inputs -----------------------------------------


def semantic_same_input(
    pairs: Mapping[str, tuple[Array, Array]],
    *,
    threshold: float = 0.15,
    min_effect: float = 0.05,
    alpha: float = 0.01,
    permutations: int = 500,
    min_prompts: int = 5,
    seed: int = 0,
) -> Detection:
    """D = 1 − mean cos(output at t1, output at t2) over prompts seen in both windows.

    ``pairs`` maps each prompt to (baseline output embeddings, current output embeddings),
    L2-normalised. Per prompt, the mean cosine over every (baseline, current) output pair; D is
    one minus their mean. When prompts have several outputs per window (golden prompts re-run),
    the window labels are permuted within each prompt: fires when p < ``alpha`` and D exceeds
    the null's mean by ``min_effect``. With one output per prompt and window no permutation is
    possible: fires when D > ``threshold`` (its false-alarm rate then depends on the model's
    sampling noise; see docs/drift.md).
    """
    items = [(q, b, c) for q, (b, c) in pairs.items() if len(b) and len(c)]
    nb = sum(len(b) for _, b, _ in items)
    nc = sum(len(c) for _, _, c in items)
    if len(items) < min_prompts:
        return _insufficient("semantic_same_input", "response", nb, nc, min_prompts)
    per_prompt = []
    for q, b, c in items:
        per_prompt.append((q, float(np.mean(b @ c.T))))
    d = 1.0 - float(np.mean([s for _, s in per_prompt]))
    worst = sorted(per_prompt, key=lambda x: x[1])[:5]
    details: dict[str, Any] = {
        "num_prompts": len(items),
        "examples": [{"prompt": q[:300], "mean_cos": s} for q, s in worst],
    }
    permutable = [(b, c) for _, b, c in items if len(b) + len(c) > 2]
    if len(permutable) < min_prompts:
        details["test"] = "fixed threshold (no repeated outputs to permute)"
        return Detection(
            "semantic_same_input",
            "response",
            d,
            threshold,
            None,
            d > threshold,
            nb,
            nc,
            details=details,
        )
    rng = np.random.default_rng(seed)
    null_sum = np.zeros(permutations)
    fixed = 0.0
    for _, b, c in items:
        if len(b) + len(c) <= 2:
            fixed += float(np.mean(b @ c.T))
            continue
        e = np.concatenate([b, c]).astype(np.float64)
        g = e @ e.T
        n, k = len(e), len(b)
        perms = np.argsort(rng.random((permutations, n)), axis=1)
        mb = np.zeros((permutations, n))
        np.put_along_axis(mb, perms[:, :k], 1.0, axis=1)
        mc = 1.0 - mb
        null_sum += np.sum((mb @ g) * mc, axis=1) / (k * (n - k))
    null = 1.0 - (null_sum + fixed) / len(items)
    p = _p_value(d, null)
    effect = d - float(np.mean(null))
    details["test"] = "permutation within prompts"
    details["null_mean"] = float(np.mean(null))
    return Detection(
        "semantic_same_input",
        "response",
        d,
        float(np.mean(null)) + min_effect,
        p,
        p < alpha and effect > min_effect,
        nb,
        nc,
        details=details,
    )


# -- (5) emerging topics -----------------------------------------------------------------------


def emerging_topics(
    baseline: Array,
    current: Array,
    current_texts: Sequence[str],
    *,
    quantile: float = 0.05,
    cluster_similarity: float = 0.5,
    min_cluster: int = 3,
    alpha: float = 0.01,
    permutations: int = 200,
    min_samples: int = 20,
    seed: int = 0,
) -> Detection:
    """Current prompts unlike any baseline prompt, clustered into topics with examples.

    A prompt is *novel* when its nearest baseline neighbour (cosine) is less similar than
    ``quantile`` of baseline prompts are to their own nearest neighbour (leave-one-out). The
    score is the share of novel current prompts; under no drift it is about ``quantile``. The
    permutation test reshuffles which prompts are baseline; fires when p < ``alpha`` and the
    novel prompts form at least one cluster of ``min_cluster`` (greedy clustering at
    ``cluster_similarity`` to the cluster's centroid).
    """
    nb, nc = len(baseline), len(current)
    if nb < min_samples or nc < min_samples:
        return _insufficient("emerging_topics", "prompt", nb, nc, min_samples)
    x = np.concatenate([baseline, current]).astype(np.float64)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)  # leave-one-out: a prompt is not its own neighbour
    n = len(x)

    def novel_shares(member: npt.NDArray[np.bool_]) -> tuple[Array, npt.NDArray[np.bool_]]:
        # member: (P, n), True for the baseline side of each labelling. Every row's nearest
        # baseline neighbour for P labellings at once, in chunks that bound the P×n×n buffer.
        shares = np.empty(len(member))
        novel_last = np.zeros(0, dtype=bool)
        chunk = max(1, 4_000_000 // (n * n))
        for lo in range(0, len(member), chunk):
            m = member[lo : lo + chunk]
            neg = np.where(m, 0.0, -np.inf)
            nn = np.max(s[None, :, :] + neg[:, None, :], axis=2)  # (p, n)
            loo = nn[m].reshape(len(m), nb)
            tau = np.quantile(loo, quantile, axis=1)
            cur = nn[~m].reshape(len(m), nc)
            novel_all = cur < tau[:, None]
            shares[lo : lo + chunk] = novel_all.mean(axis=1)
            novel_last = novel_all[-1]
        return shares, novel_last

    observed_member = np.zeros((1, n), dtype=bool)
    observed_member[0, :nb] = True
    obs_shares, novel = novel_shares(observed_member)
    observed = float(obs_shares[0])
    rng = np.random.default_rng(seed)
    member = np.zeros((permutations, n), dtype=bool)
    np.put_along_axis(member, _perms(rng, n, nb, permutations)[:, :nb], True, axis=1)
    null, _ = novel_shares(member)
    p = _p_value(observed, null)
    # Cluster the novel prompts (greedy leader clustering on cosine to the running centroid).
    idx = np.flatnonzero(novel)
    clusters: list[list[int]] = []
    centroids: list[Array] = []
    for i in idx:
        v = current[i].astype(np.float64)
        best, best_sim = -1, cluster_similarity
        for j, cen in enumerate(centroids):
            sim = float(v @ cen / (np.linalg.norm(cen) or 1.0))
            if sim >= best_sim:
                best, best_sim = j, sim
        if best < 0:
            clusters.append([int(i)])
            centroids.append(v.copy())
        else:
            clusters[best].append(int(i))
            centroids[best] = centroids[best] + v
    topics = []
    for members, cen in sorted(zip(clusters, centroids, strict=True), key=lambda t: -len(t[0])):
        if len(members) < min_cluster:
            continue
        c = cen / (np.linalg.norm(cen) or 1.0)
        order = sorted(members, key=lambda m: -float(current[m] @ c))
        words: Counter[str] = Counter()
        for m in members:
            words.update(set(_tokens(current_texts[m])) - _STOP)
        topics.append(
            {
                "size": len(members),
                "share": len(members) / nc,
                "nearest_baseline_similarity": float(np.max(baseline @ c)),
                "keywords": [w for w, _ in words.most_common(5)],
                "examples": list(dict.fromkeys(current_texts[m][:300] for m in order))[:3],
            }
        )
    return Detection(
        "emerging_topics",
        "prompt",
        observed,
        float(np.quantile(null, 1 - alpha)),
        p,
        p < alpha and bool(topics),
        nb,
        nc,
        details={"novel_prompts": int(novel.sum()), "topics": topics[:10]},
    )


_STOP = frozenset(
    "a an the to of and or is are can be i my me how do does what why when your you for in on"
    " with it at by from this that there as not no if we our us was were will would should".split()
)
