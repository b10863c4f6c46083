"""Load for fault tests: concurrent OTLP/HTTP senders that remember what was acknowledged."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _helpers import API_KEY, Server
from _payload import llm_request

PROTO = {"content-type": "application/x-protobuf", "authorization": f"Bearer {API_KEY}"}

Key = tuple[str, str]
"""(trace_id, span_id) of a span, lower-case hex."""


@dataclass(slots=True)
class Batch:
    """One pre-encoded ExportTraceServiceRequest and the keys of its spans."""

    body: bytes
    keys: list[Key]


def make_batches(num: int, spans_per_batch: int, *, seed: int = 0) -> list[Batch]:
    rng = random.Random(seed)
    out = []
    for _ in range(num):
        req, _ids = llm_request(spans_per_batch, rng=rng)
        spans = req.resource_spans[0].scope_spans[0].spans
        out.append(
            Batch(req.SerializeToString(), [(s.trace_id.hex(), s.span_id.hex()) for s in spans])
        )
    return out


@dataclass
class Senders:
    """``num_threads`` clients posting their share of ``batches`` back to back.

    A batch is acknowledged on 200. On 503 the client waits (a short, test-sized version of
    ``Retry-After``) and sends the same batch again when ``retry`` is on; on a transport error
    (the server died) the batch is remembered as unacknowledged and the client stops.
    """

    url: str
    batches: list[Batch]
    num_threads: int = 4
    retry: bool = True
    retry_sleep_s: float = 0.05
    acked: list[Batch] = field(default_factory=list)
    unacked: list[Batch] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[httpx.Response] = field(default_factory=list)
    """The first few non-200 answers, to check their shape."""
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Senders:
        shares = [self.batches[i :: self.num_threads] for i in range(self.num_threads)]
        for share in shares:
            t = threading.Thread(target=self._send, args=(share,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "senders did not finish"

    @property
    def num_acked_spans(self) -> int:
        with self._lock:
            return sum(len(b.keys) for b in self.acked)

    def _send(self, share: list[Batch]) -> None:
        with httpx.Client(base_url=self.url, headers=PROTO, timeout=60) as c:
            for i, b in enumerate(share):
                while True:
                    if self._stop.is_set():
                        with self._lock:
                            self.unacked.extend(share[i:])
                        return
                    try:
                        r = c.post("/v1/traces", content=b.body)
                    except httpx.TransportError:
                        with self._lock:
                            self.unacked.extend(share[i:])
                        return
                    with self._lock:
                        self.statuses[r.status_code] += 1
                        if r.status_code == 200:
                            self.acked.append(b)
                        elif len(self.refusals) < 50:
                            self.refusals.append(r)
                    if r.status_code == 200:
                        break
                    if not self.retry:
                        with self._lock:
                            self.unacked.append(b)
                        break
                    time.sleep(self.retry_sleep_s)


def stored_keys(srv: Server) -> Counter[Key]:
    """Every span of the project as the REST API lists it (all pages), with its multiplicity."""
    seen: Counter[Key] = Counter()
    cursor: str | None = None
    with srv.client() as c:
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/api/v1/spans", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            seen.update((d["trace_id"], d["span_id"]) for d in body["data"])
            cursor = body["next_cursor"]
            if not cursor:
                return seen


def assert_exactly_once(seen: Counter[Key], acked: list[Batch], unacked: list[Batch]) -> None:
    """Acknowledged spans are there once; an unacknowledged batch is all there or not at all."""
    dupes = [k for k, n in seen.items() if n != 1]
    assert not dupes, f"{len(dupes)} spans stored more than once"
    missing = [k for b in acked for k in b.keys if k not in seen]
    assert not missing, f"{len(missing)} acknowledged spans lost"
    sent = {k for b in acked + unacked for k in b.keys}
    foreign = [k for k in seen if k not in sent]
    assert not foreign, f"{len(foreign)} spans stored that nobody sent"
    for b in unacked:
        present = sum(k in seen for k in b.keys)
        assert present in (0, len(b.keys)), f"a batch is half-written: {present}/{len(b.keys)}"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
