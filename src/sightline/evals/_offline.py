"""Offline evaluation of a JSONL dataset, and the regression gate against a baseline run.

A dataset row: ``question``, optional ``contexts`` (list of strings), ``answer``, optional
``reference``, optional ``id`` (other keys are kept). A result row is the input row plus
``scores: {evaluator: {score, label, passed, explanation}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sightline.errors import ConfigError
from sightline.evals.base import EvalCase, EvalResult, Evaluator

__all__ = [
    "CoverageDrop",
    "Regression",
    "Summary",
    "compare_coverage",
    "compare_to_baseline",
    "evaluate_rows",
    "format_summary",
    "read_jsonl",
    "row_to_case",
    "summarize",
]

_MAX_LINE_CHARS = 10_000_000


def read_jsonl(path: Path, *, what: str = "dataset") -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; ConfigError naming the line of the first bad one."""
    try:
        # utf-8-sig: a byte-order mark (Windows tools write one) is not part of the first row
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}: is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}") from None
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > _MAX_LINE_CHARS:
            raise ConfigError(f"{what} {path}, line {n}: longer than {_MAX_LINE_CHARS} characters")
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{what} {path}, line {n}: invalid JSON ({e})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{what} {path}, line {n}: expected a JSON object")
        if "\\u" in line and _SURROGATE.search(line.lower()):
            row = _repair_surrogates(row)
        row["_line"] = n
        rows.append(row)
    if not rows:
        raise ConfigError(f"{what} {path}: no rows")
    return rows


# an escaped UTF-16 half (\ud800-\udfff): json.loads makes a pair one character, but leaves a
# lone half in the string, which tokenizers and the UTF-8 results file cannot take
_SURROGATE = re.compile(r"\\ud[89a-f][0-9a-f]{2}")
_LONE = re.compile("[\ud800-\udfff]")


def _repair_surrogates(v: Any) -> Any:
    """``v`` with each lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(v, str):
        return _LONE.sub("\ufffd", v)
    if isinstance(v, list):
        return [_repair_surrogates(x) for x in v]
    if isinstance(v, dict):
        return {_repair_surrogates(k): _repair_surrogates(x) for k, x in v.items()}
    return v


def _text(row: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    v = row.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}: missing {key!r}")
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{where}: {key!r} must be a string, got {type(v).__name__}")
    return v


def row_to_case(row: dict[str, Any], where: str) -> EvalCase:
    """The case of a dataset row; ConfigError saying what is wrong with it."""
    question = _text(row, "question", where, required=True)
    answer = _text(row, "answer", where, required=True)
    reference = _text(row, "reference", where, required=False)
    previous = _text(row, "previous_answer", where, required=False)
    contexts = row.get("contexts", [])
    if contexts is None:
        contexts = []
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise ConfigError(f"{where}: 'contexts' must be a list of strings")
    rid = row.get("id")
    if rid is not None and not isinstance(rid, str | int):
        raise ConfigError(f"{where}: 'id' must be a string or an integer")
    meta = row.get("metadata")
    return EvalCase(
        question=question,
        answer=answer,
        contexts=tuple(contexts),
        reference=reference,
        previous_answer=previous,
        metadata=meta if isinstance(meta, dict) else {},
        case_id=None if rid is None else str(rid),
    )


def _result_dict(r: EvalResult) -> dict[str, Any]:
    passed = None if r.passed is None else bool(r.passed)  # a numpy bool is not JSON
    return {"score": r.score, "label": r.label, "passed": passed, "explanation": r.explanation}


def evaluate_rows(
    rows: Sequence[dict[str, Any]],
    evaluators: Sequence[Evaluator],
    *,
    source: str = "dataset",
    batch_size: int = 256,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Score every row with every evaluator, in batches.

    Returns the result rows (input row + ``scores``) and, per evaluator that raised, its error;
    rows of a failed batch get ``{"score": null, "label": "failed", ...}`` for it.
    """
    cases = [row_to_case(r, f"{source}, line {r.get('_line', i + 1)}") for i, r in enumerate(rows)]
    out = [{k: v for k, v in r.items() if k != "_line"} | {"scores": {}} for r in rows]
    errors: dict[str, str] = {}
    for ev in evaluators:
        for b in range(0, len(cases), batch_size):
            chunk = cases[b : b + batch_size]
            try:
                results = ev.evaluate(chunk)
                if len(results) != len(chunk):
                    raise ValueError(f"returned {len(results)} results for {len(chunk)} cases")
                bad = next(
                    (r for r in results if r is not None and not isinstance(r, EvalResult)), None
                )
                if bad is not None:
                    raise TypeError(f"returned a {type(bad).__name__}, not an EvalResult or None")
            except Exception as e:  # one evaluator's failure is reported; the others go on
                err = f"{type(e).__name__}: {e}"
                errors.setdefault(ev.name, err)
                failed = {"score": None, "label": "failed", "passed": None, "explanation": err}
                for i in range(b, b + len(chunk)):
                    out[i]["scores"][ev.name] = dict(failed)
                continue
            for i, r in enumerate(results, start=b):
                if r is None:
                    continue
                score = _number(r.score)
                if r.score is not None and score is None:
                    # NaN would make the mean NaN, and a NaN mean passes every --max-drop
                    err = f"score {r.score!r} is not a finite number"
                    errors.setdefault(ev.name, err)
                    out[i]["scores"][ev.name] = {
                        "score": None, "label": "failed", "passed": None, "explanation": err
                    }  # fmt: skip
                    continue
                # a plain float: a numpy scalar from a plugin is not JSON-serialisable
                out[i]["scores"][ev.name] = _result_dict(r) | {"score": score}
    return out, errors


def _number(v: object) -> float | None:
    """``v`` as a finite float, else None (a baseline file or a plugin may give anything)."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:  # an int beyond float's range
        return None
    return f if math.isfinite(f) else None


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """One evaluator over a result file."""

    name: str
    num_scored: int
    mean: float | None
    pass_rate: float | None
    num_failed: int


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Summary]:
    """Per evaluator: rows scored, mean score, pass rate, failed rows."""
    vals: dict[str, list[float]] = {}
    passes: dict[str, list[bool]] = {}
    failed: dict[str, int] = {}
    for row in rows:
        scores = row.get("scores")
        if not isinstance(scores, dict):
            continue
        for name, s in scores.items():
            if not isinstance(s, dict):
                continue
            vals.setdefault(name, [])
            passes.setdefault(name, [])
            failed.setdefault(name, 0)
            if s.get("label") == "failed":
                failed[name] += 1
                continue
            v = _number(s.get("score"))
            if v is not None:
                vals[name].append(v)
            p = s.get("passed")
            if isinstance(p, bool):
                passes[name].append(p)
    return {
        n: Summary(
            n,
            len(vals[n]),
            sum(vals[n]) / len(vals[n]) if vals[n] else None,
            sum(passes[n]) / len(passes[n]) if passes[n] else None,
            failed[n],
        )
        for n in sorted(vals)
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Regression:
    """An evaluator whose mean dropped more than allowed."""

    name: str
    baseline_mean: float
    mean: float

    @property
    def drop(self) -> float:
        """Baseline mean minus new mean."""
        return self.baseline_mean - self.mean


def compare_to_baseline(
    new: dict[str, Summary], baseline: dict[str, Summary], *, max_drop: float
) -> list[Regression]:
    """Evaluators present in both whose mean dropped by more than ``max_drop``."""
    out = []
    for name, s in new.items():
        b = baseline.get(name)
        if b is None or b.mean is None or s.mean is None:
            continue
        # rounding guard: a drop of exactly max_drop is allowed
        if b.mean - s.mean > max_drop + 1e-12:
            out.append(Regression(name, b.mean, s.mean))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class CoverageDrop:
    """An evaluator that scored a smaller share of the rows than in the baseline."""

    name: str
    baseline_scored: int
    baseline_rows: int
    scored: int
    rows: int

    @property
    def drop(self) -> float:
        """Baseline share of rows scored minus this run's."""
        return self.baseline_scored / self.baseline_rows - self.scored / self.rows


def compare_coverage(
    new: dict[str, Summary],
    num_rows: int,
    baseline: dict[str, Summary],
    baseline_rows: int,
    *,
    names: Iterable[str],
    max_drop: float,
) -> list[CoverageDrop]:
    """Evaluators of ``names`` the baseline scored whose share of rows scored fell too far.

    That is: they now score no row, or a share of the rows smaller by more than ``max_drop``
    (empty answers, lost contexts: a mean over the few rows left, or over none, would pass).
    """
    out = []
    for name in names:
        b = baseline.get(name)
        if b is None or b.num_scored == 0 or baseline_rows <= 0 or num_rows <= 0:
            continue
        s = new.get(name)
        scored = s.num_scored if s is not None else 0
        cov = CoverageDrop(name, b.num_scored, baseline_rows, scored, num_rows)
        if scored == 0 or cov.drop > max_drop + 1e-12:
            out.append(cov)
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_summary(new: dict[str, Summary], baseline: dict[str, Summary] | None = None) -> str:
    """A plain-text table of the summary (and the baseline's means, with the change)."""
    head = ["evaluator", "scored", "mean", "pass_rate", "failed"]
    if baseline is not None:
        head += ["baseline", "change"]
    lines = [head]
    for name, s in new.items():
        row = [name, str(s.num_scored), _fmt(s.mean), _fmt(s.pass_rate), str(s.num_failed)]
        if baseline is not None:
            b = baseline.get(name)
            bm = b.mean if b else None
            change = None if bm is None or s.mean is None else s.mean - bm
            row += [_fmt(bm), "-" if change is None else f"{change:+.3f}"]
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in lines
    )
