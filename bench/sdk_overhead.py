"""SDK overhead: an instrumented LLM call against a bare OpenTelemetry span, same attributes.

Both sides run in this process, interleaved round by round, and end in the same kind of
pipeline: a real ``BatchSpanProcessor`` (queue of 4,096, the SDK's setting) to an exporter that
drops what it receives, so no network IO is measured and the export thread's work is shared.

- ``bare``: ``tracer.start_span`` on a plain ``TracerProvider``, ten GenAI attributes in one
  ``set_attributes`` (the messages JSON-encoded, as any instrumentation must), ``end()``.
- ``bare_current``: the same through ``with tracer.start_as_current_span(...)``, the idiomatic
  form (it makes the span the parent of what happens inside, as the SDK's span does).
- ``sdk``: ``with sightline.span(...)`` + ``set_llm(...)`` with the same values, on the provider
  ``sightline.init`` built (its processors, sampler and export queue).
- ``sdk_observe``: an ``@sightline.observe`` function called with one argument (input and
  output captured as JSON).

Prints one line per figure: ``name_median_us=...`` and the ratios to ``bare``.

``--instructions`` counts CPU instructions instead of timing, which does not depend on what
else the machine runs: each case runs in its own process under ``valgrind --tool=callgrind``
(all threads, the export thread included) with N calls and with none, and the difference
divided by N is the case's cost per call. Prints ``name_instructions_per_call=...`` and the
ratios.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import sightline

MESSAGES = [
    {"role": "system", "content": "Answer from the documents only. Cite their ids."},
    {"role": "user", "content": "Can I get a refund on an annual plan after two weeks?"},
]
OUTPUT = "Yes: annual plans are refundable within 30 days of purchase [kb-12]."


class DropExporter(SpanExporter):
    """Receives batches and drops them (counts spans, to check nothing was lost)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short run (tests)")
    ap.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    ap.add_argument("--only", help=argparse.SUPPRESS)  # one case, run by --instructions
    ap.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.instructions:
        instruction_counts(calls=200 if args.quick else 2000)
        return
    rounds, calls = (5, 300) if args.quick else (41, 2000)

    sightline.init(service_name="bench", span_exporter=DropExporter(), instrument=False)
    bare_provider = TracerProvider()
    bare_provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=4096))
    tracer = bare_provider.get_tracer("bench")

    def bare() -> None:
        s = tracer.start_span("chat gpt-4o-mini")
        s.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": json.dumps(MESSAGES, ensure_ascii=False),
                "sightline.output": OUTPUT,
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 17,
                "gen_ai.response.finish_reasons": ("stop",),
                "sightline.ttft_ms": 210.0,
                "gen_ai.request.temperature": 0.2,
            }
        )
        s.end()

    def bare_current() -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini") as s:
            s.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.input.messages": json.dumps(MESSAGES, ensure_ascii=False),
                    "sightline.output": OUTPUT,
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 17,
                    "gen_ai.response.finish_reasons": ("stop",),
                    "sightline.ttft_ms": 210.0,
                    "gen_ai.request.temperature": 0.2,
                }
            )

    def sdk() -> None:
        with sightline.span("chat gpt-4o-mini", kind="llm") as s:
            s.set_llm(
                model="gpt-4o-mini",
                provider="openai",
                input_messages=MESSAGES,
                output=OUTPUT,
                usage={"input_tokens": 1200, "output_tokens": 17},
                finish_reason="stop",
                ttft_ms=210.0,
                params={"temperature": 0.2},
            )

    @sightline.observe(kind="tool", name="lookup")
    def lookup(question: str) -> str:
        return OUTPUT

    def sdk_observe() -> None:
        lookup("Can I get a refund on an annual plan after two weeks?")

    cases: dict[str, Callable[[], None]] = {
        "bare": bare,
        "bare_current": bare_current,
        "sdk": sdk,
        "sdk_observe": sdk_observe,
    }
    for fn in cases.values():  # warm up
        for _ in range(200):
            fn()
    if args.only:
        gc.disable()
        fn = cases[args.only]
        for _ in range(args.calls):
            fn()
        sightline.shutdown()  # flush both export queues: their threads' work is counted
        bare_provider.shutdown()
        return
    per_call: dict[str, list[float]] = {k: [] for k in cases}
    gc_was = gc.isenabled()
    for r in range(rounds):
        # rotate the order so no case always runs right after the export thread woke up
        names = list(cases)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            fn = cases[name]
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            per_call[name].append((time.perf_counter_ns() - t0) / calls / 1000)
        time.sleep(0.01)  # let the export threads drain the queues between rounds
    if gc_was:
        gc.enable()
    med = {k: statistics.median(v) for k, v in per_call.items()}
    for k, v in med.items():
        print(f"{k}_median_us={v:.1f}")
    print(f"sdk_vs_bare_ratio={med['sdk'] / med['bare']:.2f}")
    print(f"sdk_vs_bare_current_ratio={med['sdk'] / med['bare_current']:.2f}")
    print(f"sdk_observe_vs_bare_ratio={med['sdk_observe'] / med['bare']:.2f}")
    print(f"rounds={rounds} calls_per_round={calls}")


CASES = ("bare", "bare_current", "sdk", "sdk_observe")


def _callgrind_total(case: str, calls: int) -> int:
    """Instructions of a whole process running ``case`` ``calls`` times (all threads)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={tmp}/cg.out",
            sys.executable,
            __file__,
            "--only",
            case,
            "--calls",
            str(calls),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        total = 0
        for path in glob.glob(f"{tmp}/cg.out*"):
            with open(path) as f:
                m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
            if m:
                total += int(m.group(1))
        return total


def instruction_counts(calls: int) -> None:
    per_call: dict[str, float] = {}
    for case in CASES:
        base = _callgrind_total(case, 0)
        per_call[case] = (_callgrind_total(case, calls) - base) / calls
        print(f"{case}_instructions_per_call={per_call[case]:.0f}", flush=True)
    pc = per_call
    print(f"sdk_vs_bare_instructions_ratio={pc['sdk'] / pc['bare']:.2f}")
    print(f"sdk_vs_bare_current_instructions_ratio={pc['sdk'] / pc['bare_current']:.2f}")
    print(f"sdk_observe_vs_bare_instructions_ratio={pc['sdk_observe'] / pc['bare']:.2f}")
    print(f"calls={calls}")


if __name__ == "__main__":
    main()
