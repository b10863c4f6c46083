"""Knowledge-base verification: faithfulness checks claims against a reference folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sightline.errors import ConfigError
from sightline.evals import EvalCase, load_evaluator
from sightline.evals.evaluators import Faithfulness
from sightline.evals.evaluators._corpus import ReferenceCorpus

POLICIES = {
    "billing/refunds.md": """# Refunds

Annual plans can be refunded within 30 days of purchase. Monthly plans are not refundable.

Refunds are paid back to the original payment method within 5 business days.
""",
    "shipping.txt": """Orders to Canada arrive in 5 to 7 business days.
Express shipping costs $15 and takes 2 business days.

We do not ship to Antarctica.
""",
    "notes.bin": "ignored: not a text document",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kb")
    for name, text in POLICIES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


class TestReferenceCorpus:
    def test_passages_and_search(self, corpus: Path) -> None:
        kb = ReferenceCorpus(corpus)
        sources = {p.source.split("#")[0] for p in kb.passages}
        assert sources == {"billing/refunds.md", "shipping.txt"}
        [hits] = kb.search(["How long does shipping to Canada take?"], k=1)
        assert hits[0][0].source.startswith("shipping.txt")
        assert "Canada" in hits[0][0].text

    def test_bad_folders_are_config_errors(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not a folder"):
            ReferenceCorpus(tmp_path / "missing")
        (tmp_path / "a.bin").write_text("x")
        with pytest.raises(ConfigError, match="no text documents"):
            ReferenceCorpus(tmp_path)
        with pytest.raises(ConfigError):
            load_evaluator("faithfulness", reference_corpus=str(tmp_path / "missing"))


class TestFaithfulnessAgainstTheCorpus:
    def test_claims_without_retrieval_are_checked_against_the_reference(self, corpus: Path) -> None:
        ev = Faithfulness(reference_corpus=corpus)
        right = EvalCase(question="Refunds?", answer="Annual plans can be refunded within 30 days.")
        wrong = EvalCase(question="Refunds?", answer="Annual plans can be refunded within 60 days.")
        ship = EvalCase(answer="Express shipping costs $25 and takes 2 business days.")
        r_right, r_wrong, r_ship = ev.evaluate([right, wrong, ship])
        assert r_right is not None and r_right.label == "faithful"
        assert r_right.details["reference_passages"][0].startswith("billing/refunds.md#")
        assert r_wrong is not None and r_wrong.label == "hallucination"
        assert r_ship is not None and r_ship.label == "hallucination"
        assert "25" in (r_ship.explanation or "")
        # without the corpus these cases have nothing to be checked against
        assert Faithfulness().evaluate([right]) == [None]

    def test_the_span_context_and_the_reference_both_count(self, corpus: Path) -> None:
        ev = load_evaluator("faithfulness", reference_corpus=str(corpus))
        case = EvalCase(
            answer="Your order number is 4471. Orders to Canada arrive in 5 to 7 business days.",
            contexts=("Order 4471 was placed on Monday.",),
        )
        [r] = ev.evaluate([case])
        assert r is not None
        assert r.passed is True, r.explanation
