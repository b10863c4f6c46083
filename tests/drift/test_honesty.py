"""Statistical honesty: on two samples of one distribution a detector fires in at most 5 of 100
trials; on a shifted topic mix (or a shifted value distribution) it fires."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from _topics import BASE_MIX, SHIFTED_MIX, TOPICS, prompts, sample
from sightline.drift import (
    Detection,
    embedding_mmd,
    emerging_topics,
    psi_test,
    semantic_same_input,
    token_distribution,
)
from sightline.evals import default_embedder

TRIALS = 100


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    texts = [p for t in TOPICS for p in prompts(t)]
    emb = default_embedder().embed(texts)
    return dict(zip(texts, emb, strict=True))


def _false_fires(run: Callable[[int], Detection]) -> int:
    return sum(run(i).fired for i in range(TRIALS))


def test_psi_honest_and_sensitive() -> None:
    def run(i: int, scale: float = 1.0) -> Detection:
        rng = np.random.default_rng(i)
        b = rng.lognormal(6, 0.5, 200)
        c = rng.lognormal(6, 0.5, 200) * scale
        return psi_test(b, c, feature="latency_ms", permutations=100, seed=i)

    assert _false_fires(run) <= 5
    shifted = run(1000, scale=1.8)
    assert shifted.fired and shifted.score is not None and shifted.score > 0.2
    assert shifted.details["current_median"] > shifted.details["baseline_median"]


def _token_run(i: int, mix: dict[str, float]) -> Detection:
    rng = random.Random(i)
    return token_distribution(
        sample(BASE_MIX, 120, rng), sample(mix, 120, rng), permutations=100, seed=i
    )


def test_token_distribution_honest_and_sensitive() -> None:
    assert _false_fires(lambda i: _token_run(i, BASE_MIX)) <= 5
    shifted = _token_run(1000, SHIFTED_MIX)
    assert shifted.fired
    rising = [w["word"] for w in shifted.details["rising_words"]]
    assert {"flight", "hotel", "train", "car", "airlines"} & set(rising)
    assert shifted.details["kl_bits"] > 0


def _embed(vectors: dict[str, np.ndarray], texts: list[str]) -> np.ndarray:
    return np.stack([vectors[t] for t in texts])


def test_embedding_mmd_honest_and_sensitive(vectors: dict[str, np.ndarray]) -> None:
    def run(i: int, mix: dict[str, float] = BASE_MIX) -> Detection:
        rng = random.Random(i)
        b, c = sample(BASE_MIX, 100, rng), sample(mix, 100, rng)
        return embedding_mmd(
            _embed(vectors, b),
            _embed(vectors, c),
            feature="prompt",
            permutations=100,
            seed=i,
            examples=c,
        )

    assert _false_fires(run) <= 5
    shifted = run(1000, SHIFTED_MIX)
    assert shifted.fired and shifted.p_value is not None and shifted.p_value < 0.01
    assert shifted.score is not None and shifted.threshold is not None
    assert shifted.score > shifted.threshold
    # the examples that explain it are the new topic's prompts
    assert (
        sum(
            any(w in e for w in ("flight", "hotel", "train", "car rental", "airlines"))
            for e in shifted.details["examples"]
        )
        >= 4
    )


def test_emerging_topics_honest_and_sensitive(vectors: dict[str, np.ndarray]) -> None:
    def run(i: int, mix: dict[str, float] = BASE_MIX) -> Detection:
        rng = random.Random(i)
        b, c = sample(BASE_MIX, 100, rng), sample(mix, 100, rng)
        return emerging_topics(_embed(vectors, b), _embed(vectors, c), c, permutations=100, seed=i)

    assert _false_fires(run) <= 5
    shifted = run(1000, SHIFTED_MIX)
    assert shifted.fired
    top = shifted.details["topics"][0]
    assert top["size"] >= 10
    assert all(
        any(w in e.lower() for w in ("flight", "hotel", "train", "car rental", "airlines"))
        for e in top["examples"]
    )


_ANSWERS = {
    "ok": [
        "Open Settings, choose Security and click Reset password; we email you a link.",
        "Go to Settings > Security and press Reset password. A reset link arrives by email.",
        "You can reset it under Settings, Security, Reset password; check your inbox for the link.",
        "In Settings open the Security tab, then Reset password, and follow the emailed link.",
    ],
    "drifted": [
        "I'm sorry, but I can't help with account questions. Please contact support.",
        "Unfortunately I am not able to assist with that request.",
        "As an AI model I cannot access your account or its settings.",
        "I can't help with that. Is there anything else you would like to know?",
    ],
}


def test_semantic_same_input_honest_and_sensitive() -> None:
    emb = default_embedder()
    pool = {k: emb.embed(v) for k, v in _ANSWERS.items()}
    questions = prompts("password")[:20]

    def run(i: int, current: str = "ok") -> Detection:
        rng = np.random.default_rng(i)
        pairs: dict[str, Any] = {}
        for q in questions:
            b = pool["ok"][rng.integers(0, 4, 3)]
            c = pool[current][rng.integers(0, 4, 3)]
            pairs[q] = (b, c)
        return semantic_same_input(pairs, permutations=200, seed=i)

    assert _false_fires(run) <= 5
    shifted = run(1000, "drifted")
    assert shifted.fired and shifted.score is not None and shifted.score > 0.3
    assert shifted.details["test"] == "permutation within prompts"
    assert len(shifted.details["examples"]) == 5
