"""CPU per span of the ingest decode workers, split by stage (the work `_prepare` does).

    python bench/decode_cpu.py             # 8 batches x 512 spans, 7 rounds
    python bench/decode_cpu.py --quick     # 2 batches, 2 rounds (make test)
    python bench/decode_cpu.py --callgrind 4   # only _prepare of 4 batches (for valgrind)
    python bench/decode_cpu.py --dump out.pkl  # the stored rows of fixed inputs (equivalence)

The batches are those of ``bench/ingest.py`` (``bench/_payload.py``: OTLP protobuf, 512 LLM
spans of ~20 GenAI attributes with chat messages), decoded as a decode worker does: a fresh
``Redactor`` (default policy) per request, as the server sends one with each. CPU time of this
process (``time.process_time``), medians of the rounds, µs per span:

- ``parse``: protobuf parse alone (upb);
- ``decode``: parse + attributes + ``semconv.normalise`` (no redaction);
- ``redact``: what the default redaction adds to ``decode``;
- ``price_arrow``: pricing and the Arrow table (the rest of ``_prepare``);
- ``prepare``: the whole of ``_prepare`` (what a worker spends per span);
- ``send_pickle`` / ``send_ipc``: sending its result back to the server, pickled as a
  ``Table`` (before the tenth session) or as the Arrow IPC stream the workers now send
  (``_prepare_ipc``): pickling in the worker plus unpickling and reading in the server.

Instructions per span (load-independent)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python bench/decode_cpu.py --callgrind 1    # and --callgrind 4: (I4 - I1) / (3 * 512)
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from _payload import llm_request  # noqa: E402
from sightline.ingest._decode import Limits, decode_otlp_proto  # noqa: E402
from sightline.ingest._service import _from_ipc, _prepare  # noqa: E402
from sightline.redact import Redactor  # noqa: E402

BATCH = 512
_CALLGRIND_MAX = 8
_SECRET = b"decode-cpu-bench-secret-32-bytes"


def batches(n: int, seed: int = 7) -> list[bytes]:
    """``n`` bench batches; ids come from os.urandom, the rest from ``seed``."""
    rng = random.Random(seed)
    return [llm_request(BATCH, rng=rng)[0].SerializeToString() for _ in range(n)]


def _redactor() -> Redactor:
    # a fresh one per request, unpickled, as the server ships it to its decode workers
    return pickle.loads(pickle.dumps(Redactor(secret=_SECRET)))  # noqa: S301 - our own bytes


def _cpu(fn: Any, bodies: list[bytes]) -> float:
    t0 = time.process_time()
    for b in bodies:
        fn(b)
    return (time.process_time() - t0) / (len(bodies) * BATCH) * 1e6


def measure(bodies: list[bytes], rounds: int) -> dict[str, float]:
    limits = Limits()
    stages = {
        "parse": lambda b: ExportTraceServiceRequest.FromString(b),
        "decode": lambda b: decode_otlp_proto(b, "p", limits=limits),
        "decode_redact": lambda b: decode_otlp_proto(b, "p", limits=Limits(redaction=_redactor())),
        "prepare": lambda b: _prepare("otlp_proto", b, None, "p", 1 << 26, _redactor()),
    }
    for fn in stages.values():  # warm-up: plans, price cache, imports
        fn(bodies[0])
    times: dict[str, list[float]] = {k: [] for k in stages}
    for _ in range(rounds):  # interleaved, so load changes hit every stage alike
        for name, fn in stages.items():
            times[name].append(_cpu(fn, bodies))
    med = {k: statistics.median(v) for k, v in times.items()}
    med.update(_send(bodies, rounds))
    return {
        "parse": med["parse"],
        "decode": med["decode"],
        "redact": med["decode_redact"] - med["decode"],
        "price_arrow": med["prepare"] - med["decode_redact"],
        "prepare": med["prepare"],
        "send_pickle": med["send_pickle"],
        "send_ipc": med["send_ipc"],
    }


def _send(bodies: list[bytes], rounds: int) -> dict[str, float]:
    from multiprocessing.reduction import ForkingPickler

    from sightline.ingest._service import _ipc

    results = [_prepare("otlp_proto", b, None, "p", 1 << 26, _redactor()) for b in bodies]

    def pickled() -> None:
        for r in results:
            pickle.loads(ForkingPickler.dumps(r))  # noqa: S301 - our own bytes

    def ipc() -> None:
        for table, res in results:
            buf, _ = pickle.loads(ForkingPickler.dumps((_ipc(table), res)))  # noqa: S301
            _from_ipc(buf)

    out: dict[str, list[float]] = {"send_pickle": [], "send_ipc": []}
    for _ in range(rounds):
        for name, fn in (("send_pickle", pickled), ("send_ipc", ipc)):
            t0 = time.process_time()
            fn()
            out[name].append((time.process_time() - t0) / (len(bodies) * BATCH) * 1e6)
    return {k: statistics.median(v) for k, v in out.items()}


def dump(path: str) -> None:
    """The rows ``_prepare`` stores for fixed inputs, and its counts, for an equivalence check."""
    import glob

    inputs: list[tuple[str, bytes]] = [("otlp_proto", b) for b in batches(2, seed=11)]
    root = Path(__file__).resolve().parent.parent / "tests"
    for f in sorted(glob.glob(str(root / "**" / "*.json"), recursive=True)):
        inputs.append(("otlp_json", Path(f).read_bytes()))
        inputs.append(("native", Path(f).read_bytes()))
    out = []
    for fmt, body in inputs:
        try:
            table, res = _prepare(fmt, body, None, "p", 1 << 26, _redactor())
        except Exception as e:  # noqa: BLE001 - the error is part of what is compared
            out.append((fmt, type(e).__name__, str(e)))
            continue
        rows = table.to_pylist() if table is not None else None
        out.append((fmt, rows, res.rejected, res.repaired))
    Path(path).write_bytes(pickle.dumps(out))
    print(f"dumped {len(out)} inputs to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a short run (tests)")
    ap.add_argument("--callgrind", type=int, default=None, metavar="N")
    ap.add_argument("--dump", default=None, metavar="FILE")
    args = ap.parse_args()
    if args.dump:
        dump(args.dump)
        return
    if args.callgrind is not None:
        # the same batches are built whatever N, so that runs differ only in the decoding
        bodies = batches(_CALLGRIND_MAX + 1)
        if args.callgrind > _CALLGRIND_MAX:
            ap.error(f"--callgrind: at most {_CALLGRIND_MAX}")
        _prepare("otlp_proto", bodies[-1], None, "p", 1 << 26, _redactor())  # warm-up
        for b in bodies[: args.callgrind]:
            _prepare("otlp_proto", b, None, "p", 1 << 26, _redactor())
        return
    n, rounds = (2, 2) if args.quick else (8, 7)
    med = measure(batches(n), rounds)
    for k, v in med.items():
        print(f"decode_cpu_{k}_us_per_span={v:.1f}")
    print(f"(CPU time of this process, medians of {rounds} rounds of {n} x {BATCH}-span batches)")


if __name__ == "__main__":
    main()
