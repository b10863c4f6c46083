"""`sightline eval run`: results file, summary table, the baseline gate, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sightline.cli import main

ROWS = [
    {
        "id": "q1",
        "question": "How many requests per minute does the API allow?",
        "contexts": ["The API allows 600 requests per minute per key."],
        "answer": "The API allows 600 requests per minute per key.",
        "reference": "600 requests per minute per key.",
    },
    {
        "id": "q2",
        "question": "How do I reset my password?",
        "contexts": ["To reset your password, open the sign-in page and choose Forgot password."],
        "answer": "Open the sign-in page and choose Forgot password.",
        "reference": "Use Forgot password on the sign-in page.",
    },
]
WORSE = [dict(ROWS[0]), dict(ROWS[1], answer="Bananas are yellow and rich in potassium.")]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["eval", "run", *args])


class TestEvalRun:
    def test_writes_scored_rows_and_prints_a_summary(self, tmp_path: Path) -> None:
        ds = _write(tmp_path / "ds.jsonl", ROWS)
        out = tmp_path / "out.jsonl"
        res = _run(
            str(ds),
            "--evaluators",
            "relevance,context_relevance,reference_similarity",
            "--out",
            str(out),
        )
        assert res.exit_code == 0, res.output
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert [r["id"] for r in rows] == ["q1", "q2"]
        for r in rows:
            assert set(r["scores"]) == {"relevance", "context_relevance", "reference_similarity"}
            assert set(r["scores"]["relevance"]) == {"score", "label", "passed", "explanation"}
            assert r["scores"]["relevance"]["passed"] is True
            assert r["reference"]  # the input row is kept
        assert "2 rows from" in res.output
        lines = res.output.splitlines()
        assert lines[1].split() == ["evaluator", "scored", "mean", "pass_rate", "failed"]
        assert any(x.split()[:2] == ["relevance", "2"] for x in lines)

    def test_default_evaluators_need_no_options(self, tmp_path: Path) -> None:
        res = _run(str(_write(tmp_path / "ds.jsonl", ROWS)))
        assert res.exit_code == 0, res.output
        assert "relevance" in res.output and "llm_judge" not in res.output

    def test_baseline_gate_fails_on_a_drop_and_passes_within_the_allowance(
        self, tmp_path: Path
    ) -> None:
        base = tmp_path / "base.jsonl"
        assert (
            _run(
                str(_write(tmp_path / "a.jsonl", ROWS)),
                "--evaluators",
                "relevance",
                "--out",
                str(base),
            ).exit_code
            == 0
        )
        same = _run(str(tmp_path / "a.jsonl"), "--evaluators", "relevance", "--baseline", str(base))
        assert same.exit_code == 0, same.output
        assert "baseline" in same.output and "+0.000" in same.output
        worse = _run(
            str(_write(tmp_path / "b.jsonl", WORSE)),
            "--evaluators",
            "relevance",
            "--baseline",
            str(base),
            "--max-drop",
            "0.02",
        )
        assert worse.exit_code == 1
        assert "regression: relevance mean dropped by" in worse.output
        lenient = _run(
            str(tmp_path / "b.jsonl"),
            "--evaluators",
            "relevance",
            "--baseline",
            str(base),
            "--max-drop",
            "1",
        )
        assert lenient.exit_code == 0, lenient.output

    def test_evaluator_options_from_json(self, tmp_path: Path) -> None:
        rows = [{"question": "q", "answer": '{"a": 1}'}, {"question": "q", "answer": "{oops"}]
        out = tmp_path / "o.jsonl"
        res = _run(
            str(_write(tmp_path / "f.jsonl", rows)),
            "--evaluators",
            "format",
            "--options",
            '{"format": {"json": true}}',
            "--out",
            str(out),
        )
        assert res.exit_code == 0, res.output
        labels = [json.loads(x)["scores"]["format"]["label"] for x in out.read_text().splitlines()]
        assert labels == ["compliant", "invalid_json"]

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            ('{"question": "q", "answer": "a"}\n{"question": \n', "line 2: invalid JSON"),
            ('{"question": "q"}\n', "line 1: missing 'answer'"),
            ('{"question": "q", "answer": "a", "contexts": "doc"}\n', "'contexts' must be a list"),
            ('{"question": 3, "answer": "a"}\n', "'question' must be a string"),
            ("[1, 2]\n", "line 1: expected a JSON object"),
            ("\n\n", "no rows"),
        ],
    )
    def test_bad_rows_are_clear_errors(self, tmp_path: Path, content: str, fragment: str) -> None:
        ds = tmp_path / "bad.jsonl"
        ds.write_text(content)
        res = _run(str(ds), "--evaluators", "relevance")
        assert res.exit_code == 1
        assert fragment in res.output and "Traceback" not in res.output

    def test_bad_files_and_names(self, tmp_path: Path) -> None:
        res = _run(str(tmp_path / "missing.jsonl"))
        assert res.exit_code == 1 and "no such file" in res.output
        ds = _write(tmp_path / "ds.jsonl", ROWS)
        res = _run(str(ds), "--evaluators", "relevance,nope")
        assert res.exit_code == 1 and "unknown evaluator 'nope'" in res.output
        res = _run(str(ds), "--options", "{not json")
        assert res.exit_code == 1 and "--options" in res.output
        res = _run(str(ds), "--evaluators", "relevance", "--baseline", str(tmp_path / "nah"))
        assert res.exit_code == 1 and "baseline" in res.output and "no such file" in res.output
        res = _run(str(ds), "--max-drop", "-1")
        assert res.exit_code == 2

    def test_mistakes_are_caught_before_anything_is_evaluated(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import sightline.evals

        def never(*args: Any, **kw: Any) -> Any:
            raise AssertionError("evaluated despite the mistake")

        monkeypatch.setattr(sightline.evals, "evaluate_rows", never)
        ds = _write(tmp_path / "ds.jsonl", ROWS)
        # an --out that cannot be written was found only after the whole (maybe paid) run
        res = _run(str(ds), "--evaluators", "relevance", "--out", str(tmp_path / "no" / "x.jsonl"))
        assert res.exit_code == 1 and "--out" in res.output and "No such file" in res.output
        # an empty --evaluators ran every default evaluator
        res = _run(str(ds), "--evaluators", "")
        assert res.exit_code == 1 and "no evaluators to run" in res.output
        # options under a misspelt name were dropped without a word
        res = _run(str(ds), "--evaluators", "relevance", "--options", '{"llm_judg": {"a": 1}}')
        assert res.exit_code == 1 and "--options names no registered evaluator: llm_judg" in (
            res.output
        )

    def test_options_of_an_evaluator_not_run_are_noted_and_out_is_kept_until_written(
        self, tmp_path: Path
    ) -> None:
        ds = _write(tmp_path / "ds.jsonl", ROWS)
        out = tmp_path / "r.jsonl"
        opts = '{"format": {"json": true}}'
        res = _run(str(ds), "--evaluators", "relevance", "--options", opts, "--out", str(out))
        assert res.exit_code == 0, res.output
        assert "note: --options for evaluators not run: format" in res.output
        assert len(out.read_text().splitlines()) == 2
        # the same file as the baseline: checking --out early must not empty it before it is read
        res = _run(str(ds), "--evaluators", "relevance", "--out", str(out), "--baseline", str(out))
        assert res.exit_code == 0, res.output
        assert len(out.read_text().splitlines()) == 2

    def test_a_lone_surrogate_in_a_row_becomes_a_replacement_character(
        self, tmp_path: Path
    ) -> None:
        # a cut emoji (one half of a UTF-16 pair, as JavaScript writes it) crashed the
        # tokenizer-based evaluators and the results file
        ds = tmp_path / "ds.jsonl"
        ds.write_text(json.dumps(dict(ROWS[1], question="How do I reset my password? \ud83d")))
        assert ds.read_text().count("\\ud83d") == 1  # json.dumps escapes the lone half
        out = tmp_path / "out.jsonl"
        res = _run(str(ds), "--evaluators", "relevance,pii_leak", "--out", str(out))
        assert res.exit_code == 0, res.output
        [got] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        assert got["question"] == "How do I reset my password? \ufffd"
        assert set(got["scores"]) == {"relevance", "pii_leak"}

    def test_a_nan_max_drop_is_refused_not_a_gate_that_always_passes(self, tmp_path: Path) -> None:
        base = tmp_path / "base.jsonl"
        ok = _run(
            str(_write(tmp_path / "a.jsonl", ROWS)), "--evaluators", "relevance", "--out", str(base)
        )
        assert ok.exit_code == 0, ok.output
        worse = _write(tmp_path / "b.jsonl", WORSE)
        for nan in ("nan", "NaN"):
            res = _run(
                str(worse), "--evaluators", "relevance", "--baseline", str(base), "--max-drop", nan
            )
            assert res.exit_code == 2, res.output
            assert "--max-drop" in res.output and "not a number" in res.output

    def test_unusable_numbers_in_a_baseline_are_ignored_without_a_traceback(
        self, tmp_path: Path
    ) -> None:
        ds = _write(tmp_path / "a.jsonl", ROWS)
        base = tmp_path / "base.jsonl"
        good = {"question": "q", "answer": "a", "scores": {"relevance": {"score": 0.5}}}
        base.write_text(
            json.dumps(good)
            + "\n"
            + '{"question": "q", "answer": "a", "scores": {"relevance": {"score": 1'
            + "0" * 400
            + "}}}\n"
            + '{"question": "q", "answer": "a", "scores": {"relevance": {"score": NaN}}}\n'
            + '{"question": "q", "answer": "a", "scores": {"relevance": {"score": Infinity}}}\n'
        )
        res = _run(str(ds), "--evaluators", "relevance", "--baseline", str(base))
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        assert res.exit_code == 0, res.output
        line = next(x for x in res.output.splitlines() if x.startswith("relevance"))
        assert line.split()[5] == "0.500"  # the baseline's mean: of its one usable score

    def test_a_baseline_without_scores_is_refused_not_compared_to_nothing(
        self, tmp_path: Path
    ) -> None:
        ds = _write(tmp_path / "a.jsonl", ROWS)
        # the dataset itself given as the baseline: no evaluator could be compared
        res = _run(str(ds), "--evaluators", "relevance", "--baseline", str(ds))
        assert res.exit_code == 1, res.output
        assert "no row has 'scores'" in res.output and "Traceback" not in res.output

    def test_a_utf8_byte_order_mark_is_not_part_of_the_first_row(self, tmp_path: Path) -> None:
        ds = tmp_path / "bom.jsonl"
        ds.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in ROWS).encode())
        res = _run(str(ds), "--evaluators", "relevance")
        assert res.exit_code == 0, res.output
        assert "2 rows from" in res.output

    def test_an_evaluator_scored_in_the_baseline_but_not_now_is_a_regression(
        self, tmp_path: Path
    ) -> None:
        base = tmp_path / "base.jsonl"
        names = "relevance,context_relevance"
        ok = _run(
            str(_write(tmp_path / "a.jsonl", ROWS)), "--evaluators", names, "--out", str(base)
        )
        assert ok.exit_code == 0, ok.output
        # no contexts: context_relevance does not apply, so the gate has nothing to compare
        bare = [{k: v for k, v in r.items() if k != "contexts"} for r in ROWS]
        res = _run(
            str(_write(tmp_path / "b.jsonl", bare)), "--evaluators", names, "--baseline", str(base)
        )
        assert res.exit_code == 1, res.output
        assert (
            "regression: context_relevance scored 0 of 2 rows, the baseline 2 of 2 "
            "(it applied to no row of this run)" in res.output
        )
        assert "regression: relevance" not in res.output
        line = next(x for x in res.output.splitlines() if x.startswith("context_relevance"))
        assert line.split()[:5] == ["context_relevance", "0", "-", "-", "0"]

    def test_empty_answers_fail_the_gate_not_pass_it_unscored(self, tmp_path: Path) -> None:
        # every evaluator of the answer skips an empty one: the candidate was "not compared"
        # on them, and a model that answers nothing passed the gate with exit 0
        base = tmp_path / "base.jsonl"
        names = "relevance,context_relevance,toxicity"
        ok = _run(
            str(_write(tmp_path / "a.jsonl", ROWS)), "--evaluators", names, "--out", str(base)
        )
        assert ok.exit_code == 0, ok.output
        empty = [dict(r, answer="") for r in ROWS]
        res = _run(
            str(_write(tmp_path / "b.jsonl", empty)),
            "--evaluators",
            names,
            "--baseline",
            str(base),
            "--max-drop",
            "0.02",
        )
        assert res.exit_code == 1, res.output
        for name in ("relevance", "toxicity"):
            assert f"regression: {name} scored 0 of 2 rows, the baseline 2 of 2" in res.output
        assert "regression: context_relevance" not in res.output  # it grades the contexts
        # half the answers empty: far fewer rows scored, whatever the mean of the others
        half = [ROWS[0], dict(ROWS[1], answer="")]
        res = _run(
            str(_write(tmp_path / "c.jsonl", half)),
            "--evaluators",
            "relevance",
            "--baseline",
            str(base),
            "--max-drop",
            "1",
        )
        assert res.exit_code == 1, res.output
        assert (
            "regression: relevance scored 1 of 2 rows, the baseline 2 of 2, a drop of 0.500, "
            "more than --max-coverage-drop 0.1" in res.output
        )
        lenient = _run(
            str(tmp_path / "c.jsonl"),
            "--evaluators",
            "relevance",
            "--baseline",
            str(base),
            "--max-drop",
            "1",
            "--max-coverage-drop",
            "0.5",
        )
        assert lenient.exit_code == 0, lenient.output


def test_a_crashing_evaluator_is_reported_and_the_others_go_on() -> None:
    from sightline.evals import EvalCase, EvalResult, evaluate_rows
    from sightline.evals.evaluators import UserCorrection

    class Boom:
        name = "boom"
        version = "0"

        def evaluate(self, cases: list[EvalCase]) -> list[EvalResult | None]:
            raise RuntimeError("kaput")

    rows = [{"question": "That's wrong", "answer": "a", "previous_answer": "b", "_line": 1}]
    out, errors = evaluate_rows(rows, [Boom(), UserCorrection()])
    assert errors == {"boom": "RuntimeError: kaput"}
    assert out[0]["scores"]["boom"]["label"] == "failed"
    assert out[0]["scores"]["user_correction"]["label"] == "corrected"
    assert "_line" not in out[0]


def test_a_non_finite_score_fails_its_evaluator_and_numpy_scalars_are_plain_json() -> None:
    import numpy as np

    from sightline.evals import EvalCase, EvalResult, evaluate_rows, summarize

    class Odd:
        name = "odd"
        version = "0"

        def evaluate(self, cases: list[EvalCase]) -> list[EvalResult | None]:
            return [EvalResult(score=float("nan")), EvalResult(score=0.25)]

    class Numpy:
        name = "numpy"
        version = "0"

        def evaluate(self, cases: list[EvalCase]) -> list[EvalResult | None]:
            return [EvalResult(score=np.float32(0.5), passed=np.bool_(True))] * len(cases)  # type: ignore[arg-type]

    rows = [
        {"question": "q", "answer": "a", "_line": 1},
        {"question": "q", "answer": "b", "_line": 2},
    ]
    out, errors = evaluate_rows(rows, [Odd(), Numpy()])
    assert errors == {"odd": "score nan is not a finite number"}
    assert out[0]["scores"]["odd"]["label"] == "failed" and out[1]["scores"]["odd"]["score"] == 0.25
    summary = summarize(out)
    assert summary["odd"].mean == 0.25 and summary["odd"].num_failed == 1
    text = "".join(json.dumps(r, allow_nan=False) for r in out)  # valid JSON, no NaN
    assert '"numpy": {"score": 0.5, "label": null, "passed": true' in text


def test_an_evaluator_returning_something_else_fails_without_a_traceback() -> None:
    from sightline.evals import EvalCase, EvalResult, evaluate_rows

    class Dicts:
        name = "dicts"
        version = "0"

        def evaluate(self, cases: list[EvalCase]) -> list[EvalResult | None]:
            return [{"score": 1.0}] * len(cases)  # type: ignore[list-item]

    rows = [{"question": "q", "answer": "a", "_line": 1}]
    out, errors = evaluate_rows(rows, [Dicts()])
    assert errors == {"dicts": "TypeError: returned a dict, not an EvalResult or None"}
    assert out[0]["scores"]["dicts"]["label"] == "failed"


def _judge_options(base_url: str, **kw: Any) -> str:
    opts = {"base_url": base_url, "model": "gpt-4o-mini", "max_retries": 0, "backoff_s": 0.01}
    return json.dumps({"llm_judge": opts | kw})


def _reply(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


class TestFailedRows:
    """Rows an evaluator labels `failed` (it did not raise) fail the run: one is enough."""

    def test_a_judge_answering_garbage_fails_the_run(self, tmp_path: Path) -> None:
        from _fake_judge import FakeJudge

        ds = _write(tmp_path / "ds.jsonl", ROWS)
        with FakeJudge() as judge:
            judge.garbage = True
            res = _run(
                str(ds), "--evaluators", "llm_judge", "--options", _judge_options(judge.base_url)
            )
        assert res.exit_code == 1, res.output
        line = next(x for x in res.output.splitlines() if x.startswith("llm_judge"))
        assert line.split()[1:] == ["0", "-", "-", "2"]
        assert "error: evaluator llm_judge failed on 2 of 2 rows, e.g.:" in res.output
        assert "no JSON object" in res.output and "Traceback" not in res.output

    def test_a_score_out_of_range_on_one_row_fails_the_run(self, tmp_path: Path) -> None:
        from _fake_judge import FakeJudge

        ds = _write(tmp_path / "ds.jsonl", ROWS)
        with FakeJudge() as judge:
            judge.bodies = [_reply('{"score": 9, "explanation": "off the scale"}')]
            res = _run(
                str(ds),
                "--evaluators",
                "llm_judge",
                "--options",
                _judge_options(judge.base_url, concurrency=1),
            )
        assert res.exit_code == 1, res.output
        line = next(x for x in res.output.splitlines() if x.startswith("llm_judge"))
        assert line.split()[1:3] == ["1", "1.000"] and line.split()[4] == "1"
        assert "error: evaluator llm_judge failed on 1 of 2 rows" in res.output

    def test_a_judge_that_is_not_running_fails_the_run(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as s:  # a free port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ds = _write(tmp_path / "ds.jsonl", ROWS)
        res = _run(
            str(ds),
            "--evaluators",
            "relevance,llm_judge",
            "--options",
            _judge_options(f"http://127.0.0.1:{port}/v1", timeout_s=2),
        )
        assert res.exit_code == 1, res.output
        assert "error: evaluator llm_judge failed on 2 of 2 rows, e.g.: judge unreachable" in (
            res.output
        )
        assert "evaluator relevance" not in res.output


class TestJudgeApiKey:
    """SIGHTLINE_EVAL_JUDGE_API_KEY reaches the judge, as in `serve`; --options' api_key wins."""

    def test_the_environment_key_is_sent_and_an_options_key_wins(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from _fake_judge import FakeJudge

        monkeypatch.setenv("SIGHTLINE_EVAL_JUDGE_API_KEY", "sk-from-env")
        ds = _write(tmp_path / "ds.jsonl", ROWS[:1])
        with FakeJudge() as judge:
            res = _run(
                str(ds), "--evaluators", "llm_judge", "--options", _judge_options(judge.base_url)
            )
            assert res.exit_code == 0, res.output
            assert [h.get("authorization") for h in judge.headers] == ["Bearer sk-from-env"]
            res = _run(
                str(ds),
                "--evaluators",
                "llm_judge",
                "--options",
                _judge_options(judge.base_url, api_key="sk-from-options"),
            )
            assert res.exit_code == 0, res.output
            assert judge.headers[1].get("authorization") == "Bearer sk-from-options"

    def test_the_environment_key_alone_does_not_add_the_judge(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SIGHTLINE_EVAL_JUDGE_API_KEY", "sk-from-env")
        res = _run(str(_write(tmp_path / "ds.jsonl", ROWS)), "--evaluators", "relevance")
        assert res.exit_code == 0, res.output
        assert "llm_judge" not in res.output


class TestDocsExample:
    """docs/evals.md's `eval run` example prints what the command prints."""

    DOC = Path(__file__).resolve().parents[2] / "docs" / "evals.md"

    def test_the_golden_example_prints_the_documented_table(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import shlex

        text = self.DOC.read_text()
        m = re.search(
            r"cat > golden\.jsonl <<'JSONL'\n(.*?)\nJSONL\n(sightline eval run [^\n]*)\n```\n\n"
            r"```\n(.*?)\n```",
            text,
            re.S,
        )
        assert m is not None, "the golden.jsonl example is not in docs/evals.md"
        (tmp_path / "golden.jsonl").write_text(m.group(1) + "\n")
        monkeypatch.chdir(tmp_path)
        res = CliRunner().invoke(main, shlex.split(m.group(2))[1:])
        assert res.exit_code == 0, res.output
        assert res.output.splitlines() == m.group(3).splitlines()

    def test_the_documented_defaults_leave_out_what_the_code_leaves_out(self) -> None:
        from sightline.evals import available_evaluators, default_evaluator_names

        text = " ".join(self.DOC.read_text().split())
        start = text.index("`--evaluators` defaults to")
        sentence = text[start : text.index(";", start)]
        left_out = set(available_evaluators()) - set(default_evaluator_names())
        assert left_out == {"format", "llm_judge", "reference_similarity"}
        named = set(re.findall(r"`(\w+)`", sentence)) - {"serve"}
        assert named - {"--evaluators"} == left_out, sentence
