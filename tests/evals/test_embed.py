from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sightline.evals import DIM, MODEL_L3, MODELS, Embedder


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


class TestModels:
    def test_l3_model_loads_offline_and_gives_unit_vectors(self) -> None:
        """The relevance model comes from an installed package: no hub, no network."""
        code = (
            "import json, numpy as np\n"
            "from sightline.evals import Embedder\n"
            "e = Embedder(model='paraphrase-MiniLM-L3-v2', threads=1)\n"
            "v = e.embed(['How do I reset my password?',"
            " 'I forgot my password, how can I change it?',"
            " 'The refund period for annual plans is 30 days.', ''])\n"
            "print(json.dumps({'shape': list(v.shape), 'dtype': str(v.dtype),"
            " 'norms': np.linalg.norm(v, axis=1).tolist(),"
            " 'para': float(v[0] @ v[1]), 'other': float(v[0] @ v[2])}))\n"
        )
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # Any attempt at the network would fail fast through this dead proxy.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
        }
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got["shape"] == [4, DIM] and got["dtype"] == "float32"
        assert np.allclose(got["norms"], 1.0, atol=1e-4)
        assert got["para"] > 0.6 > 0.3 > got["other"]

    def test_l3_uses_the_same_vocabulary_and_128_pieces(self) -> None:
        e = Embedder(model=MODEL_L3, threads=1, cache_size=0)
        assert e.model == MODEL_L3
        # The ONNX embedding matrix has the tokenizer's 30,522 rows: every id is in range,
        # so a text of rare word pieces embeds without a Gather error.
        assert e._tokenizer.get_vocab_size() == 30522
        long = ["Invoices are under Billing > Invoices. " * 40]  # ~400 word pieces
        a = e.embed(long)
        b = Embedder(model=MODEL_L3, threads=1, cache_size=0, max_tokens=128).embed(long)
        assert np.array_equal(a, b)  # trained on 128 word pieces: cut there by default
        assert e.embed(["zzyzx qwertyuiop ñandú 漢字 🙂"]).shape == (1, DIM)

    def test_models_differ_but_agree_on_what_is_similar(self) -> None:
        texts = ["How do I reset my password?", "I forgot my password, how can I change it?"]
        vecs = {m: Embedder(model=m, threads=1).embed(texts) for m in MODELS}
        l6, l3 = vecs["all-MiniLM-L6-v2"], vecs[MODEL_L3]
        assert not np.allclose(l6, l3, atol=1e-2)  # really another model
        assert float(l3[0] @ l3[1]) > 0.6 and float(l6[0] @ l6[1]) > 0.6

    def test_unknown_model_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="unknown embedding model 'bert-large'"):
            Embedder(model="bert-large")
