"""The app's time with and without the SDK, against a collector that never answers.

Runs tests/sdk/test_never_hurt.py's app (rounds of instrumented and uninstrumented calls that
each wait ``--work-ms``) and prints the median of the per-round ratios, the figure that test
bounds at 1.10. The SDK's cost is CPU, so the ratio grows with the machine's load: compare runs
made at the same moment only.

    python bench/never_hurt.py [--work-ms 20] [--rounds 40] [--per-round 25] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "sdk")]

from test_never_hurt import APP, PER_ROUND, ROUNDS, WORK_S  # noqa: E402

from _helpers import API_KEY  # noqa: E402


def main() -> None:
    """Print ``never_hurt_median_round_ratio`` and per-call overhead, one line per run."""
    p = argparse.ArgumentParser()
    p.add_argument("--work-ms", type=float, default=WORK_S * 1000)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--per-round", type=int, default=PER_ROUND)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="4 rounds of 5, one run")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.runs = 4, 5, 1
    srv = socket.socket()  # accepts connections (the backlog) and never answers
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    endpoint = f"http://127.0.0.1:{srv.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGHTLINE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    medians = []
    for _ in range(args.runs):
        argv = [endpoint, API_KEY, "0", str(args.rounds), str(args.per_round)]
        proc = subprocess.run(
            [sys.executable, "-c", APP, *argv, str(args.work_ms / 1000)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        r = json.loads(proc.stdout)
        ratios = [i / b for i, b in zip(r["inst"], r["bare"], strict=True)]
        med = statistics.median(ratios)
        medians.append(med)
        over_ms = (med - 1) * args.work_ms
        print(f"run median_round_ratio={med:.3f} overhead_per_call_ms={over_ms:.2f}", flush=True)
    srv.close()
    load = os.getloadavg()[0]
    print(f"work_ms={args.work_ms:g} load_avg_1m={load:.1f}")
    print(f"never_hurt_median_round_ratio={statistics.median(medians):.3f}")


if __name__ == "__main__":
    main()
