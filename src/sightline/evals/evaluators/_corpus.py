"""A reference corpus: a folder of documents, split into passages and indexed by embeddings.

``faithfulness`` can check an answer's claims against it (knowledge-base verification), not
only against the documents the span retrieved. Passages are embedded with the evaluators' own
sentence embedder, once, on first use; a search is one matrix product.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sightline.errors import ConfigError
from sightline.evals.evaluators._text import split_sentences

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from sightline.evals._embed import Embedder

__all__ = ["Passage", "ReferenceCorpus"]

SUFFIXES = (".txt", ".md", ".markdown", ".rst")
_MAX_FILES = 10_000
_MAX_FILE_BYTES = 2_000_000
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclasses.dataclass(frozen=True, slots=True)
class Passage:
    """A passage of a reference document."""

    source: str
    """The file, relative to the corpus folder, and the passage number: ``refunds.md#2``."""
    text: str


def _passages(name: str, text: str, max_sentences: int) -> list[Passage]:
    out: list[Passage] = []
    for para in _PARAGRAPH.split(text):
        para = " ".join(para.split())
        if not para or para.startswith("#") and len(para.split()) < 8:
            continue  # a heading alone says nothing to check against
        sentences = split_sentences(para) or [para]
        for i in range(0, len(sentences), max_sentences):
            chunk = " ".join(sentences[i : i + max_sentences]).lstrip("# ")
            out.append(Passage(f"{name}#{len(out) + 1}", chunk))
    return out


class ReferenceCorpus:
    """The ``.txt``/``.md``/``.rst`` files under ``folder``, in passages of a few sentences.

    Raises:
        ConfigError: the folder does not exist, holds no documents, or too many.

    Example:
        ```python
        corpus = ReferenceCorpus("docs/policies")
        [hits] = corpus.search(["Refunds take 60 days"], k=2)
        ```
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        embedder: Embedder | None = None,
        max_sentences: int = 3,
    ) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"reference corpus {root} is not a folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if len(files) > _MAX_FILES:
            raise ConfigError(f"reference corpus {root}: more than {_MAX_FILES} documents")
        self.passages: list[Passage] = []
        for p in files:
            if p.stat().st_size > _MAX_FILE_BYTES:
                raise ConfigError(f"reference corpus: {p} is larger than {_MAX_FILE_BYTES} bytes")
            text = p.read_text(encoding="utf-8", errors="replace")
            self.passages += _passages(p.relative_to(root).as_posix(), text, max_sentences)
        if not self.passages:
            raise ConfigError(f"reference corpus {root} holds no text documents ({SUFFIXES})")
        self.folder = root
        self._embedder = embedder
        self._matrix: npt.NDArray[np.float32] | None = None
        self._lock = threading.Lock()

    def _index(self) -> npt.NDArray[np.float32]:
        with self._lock:
            if self._matrix is None:
                if self._embedder is None:
                    from sightline.evals._embed import default_embedder

                    self._embedder = default_embedder()
                self._matrix = self._embedder.embed([p.text for p in self.passages])
            return self._matrix

    def search(self, queries: Sequence[str], k: int = 3) -> list[list[tuple[Passage, float]]]:
        """The ``k`` passages closest to each query (cosine similarity), best first."""
        import numpy as np

        if not queries:
            return []
        matrix = self._index()
        assert self._embedder is not None  # noqa: S101 - _index sets it
        sims = self._embedder.embed(list(queries)) @ matrix.T
        k = max(1, min(k, len(self.passages)))
        out = []
        for row in sims:
            top = np.argsort(-row)[:k]
            out.append([(self.passages[i], float(row[i])) for i in top])
        return out
