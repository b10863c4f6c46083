"""False alarms of `faithfulness` on supported answers written for the *tuning* scenarios.

bench/faithfulness_dev.jsonl holds 66 answers (2 per tuning scenario of
tests/evals/data/faithfulness.jsonl: its `group`), each supported by that scenario's documents,
written for the third faithfulness pass to watch false alarms while tuning. Not part of the
labelled sets; no held-out scenario appears in it.

    python bench/faithfulness_dev.py      # the count flagged, and each explanation
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sightline.evals import EvalCase
from sightline.evals.evaluators import Faithfulness

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_accuracy import load  # noqa: E402

DEV = Path(__file__).resolve().parent / "faithfulness_dev.jsonl"


def main() -> None:
    scenarios: dict[str, dict[str, object]] = {}
    for r in load("faithfulness"):
        if r["split"] == "tune":
            scenarios.setdefault(r["group"], r)
    rows = [json.loads(line) for line in DEV.read_text().splitlines()]
    assert {r["group"] for r in rows} <= set(scenarios), "dev answers only for tuning scenarios"
    cases = [
        EvalCase(
            question=str(scenarios[r["group"]]["question"]),
            answer=r["answer"],
            contexts=tuple(scenarios[r["group"]]["contexts"]),  # type: ignore[arg-type]
        )
        for r in rows
    ]
    results = Faithfulness().evaluate(cases)
    flagged = [(r, x) for r, x in zip(rows, results, strict=True) if x and not x.passed]
    print(f"faithfulness_dev_supported={len(cases)} faithfulness_dev_flagged={len(flagged)}")
    for r, x in flagged:
        print(f"  {r['group']}: {x.explanation}")


if __name__ == "__main__":
    main()
