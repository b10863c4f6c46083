"""Run ``python -m sightline`` with every Python thread's name set as its Linux thread name.

    BENCH_THREAD_MAP=/tmp/x.tsv python bench/_threadnames.py serve --port ...

CPython 3.11 does not name native threads, so ``/proc/PID/task/TID/comm`` says ``python`` for
all of them. Started this way, each Python thread appends ``TID<tab>name<tab>target`` to the
file ``BENCH_THREAD_MAP`` when it starts (its ``threading`` name and the qualified name of
the function it runs) and sets its ``comm`` to the first 15 bytes of its name. The main thread
(the event loop) is the one whose TID is the PID; any other thread missing from the file is a
native one (DuckDB's task scheduler, gRPC). Benchmark only: the product is not changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import runpy
import sys
import threading

_PR_SET_NAME = 15
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]
_MAP = os.environ.get("BENCH_THREAD_MAP")
_lock = threading.Lock()


def _named_bootstrap(self: threading.Thread) -> None:
    target = getattr(self, "_target", None)
    what = getattr(target, "__qualname__", None) or type(self).__qualname__
    mod = getattr(target, "__module__", None) or type(self).__module__
    _libc.prctl(_PR_SET_NAME, self.name.encode()[:15], 0, 0, 0)
    if _MAP:
        with _lock, open(_MAP, "a") as f:
            f.write(f"{threading.get_native_id()}\t{self.name}\t{mod}.{what}\n")
    _bootstrap(self)


threading.Thread._bootstrap_inner = _named_bootstrap  # type: ignore[attr-defined]

if __name__ == "__main__":
    sys.argv = ["sightline", *sys.argv[1:]]
    runpy.run_module("sightline", run_name="__main__", alter_sys=True)
