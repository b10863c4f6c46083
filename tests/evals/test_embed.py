from __future__ import annotations

import numpy as np
import pytest

from sightline.evals import DIM, Embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


class TestEmbedder:
    def test_vectors_are_unit_length(self, embedder: Embedder) -> None:
        v = embedder.embed(["How do I reset my password?", ""])
        assert v.shape == (2, DIM)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)

    def test_paraphrases_are_closer_than_unrelated_texts(self, embedder: Embedder) -> None:
        q, para, other = embedder.embed(
            [
                "How do I reset my password?",
                "I forgot my password, how can I change it?",
                "The refund period for annual plans is 30 days.",
            ]
        )
        assert float(q @ para) > 0.6
        assert float(q @ other) < 0.3

    def test_repeated_texts_are_embedded_once(self, embedder: Embedder) -> None:
        before = embedder.num_embedded
        texts = ["a repeated sentence about webhooks"] * 5 + ["another one about invoices"]
        v = embedder.embed(texts)
        assert embedder.num_embedded - before == 2
        assert np.array_equal(v[0], v[4])
        again = embedder.embed(["another one about invoices"])
        assert embedder.num_embedded - before == 2
        assert np.array_equal(again[0], v[5])

    def test_batches_give_the_same_vectors_as_single_texts(self) -> None:
        texts = [f"sentence number {i} about billing and refunds" * (1 + i % 3) for i in range(10)]
        batched = Embedder(threads=1, batch_size=4, cache_size=0).embed(texts)
        single = np.stack([Embedder(threads=1, cache_size=0).embed([t])[0] for t in texts[:3]])
        assert np.allclose(batched[:3], single, atol=1e-3)

    def test_long_texts_are_truncated_not_rejected(self, embedder: Embedder) -> None:
        v = embedder.embed(["word " * 5000])
        assert v.shape == (1, DIM)

    def test_a_128_token_cap_changes_nothing_under_it(self) -> None:
        texts = [
            "How do I reset my password?",
            "Annual plans can be refunded in full within 30 days of purchase.",
            "Invoices are under Billing > Invoices. " * 8,  # ~90 word pieces
        ]
        full = Embedder(threads=1, cache_size=0).embed(texts)
        capped = Embedder(threads=1, cache_size=0, max_tokens=128).embed(texts)
        assert np.allclose(full, capped, atol=1e-5)
        long = ["Invoices are under Billing > Invoices. " * 40]  # ~400 word pieces
        a = Embedder(threads=1, cache_size=0).embed(long)[0]
        b = Embedder(threads=1, cache_size=0, max_tokens=128).embed(long)[0]
        assert not np.allclose(a, b, atol=1e-5)  # the cap cuts what is past it

    def test_max_tokens_out_of_range_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="max_tokens"):
            Embedder(max_tokens=1000)
