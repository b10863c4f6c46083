"""The budget guard: ask the server before an LLM call, raise BudgetExceeded instead of spending.

The answer of ``GET /api/v1/budgets/check`` is cached ``cache_s`` seconds per scope (user,
tenant, feature, model). Between two answers the guard keeps its own ledger per budget, so
concurrent callers of one process never overspend a hard limit by more than one request:

- a call is admitted only while ``spent + (completed + in_flight) * max_request < limit``,
  where ``spent`` is the server's figure, ``completed``/``in_flight`` are this process's calls
  since that figure and ``max_request`` the dearest request the server has seen for the budget
  (none seen yet: one call at a time);
- when the estimate says no, the guard flushes this process's spans (the server commits before
  it answers) and asks again, waiting for calls in flight first: it refuses only once the
  server's own spend has reached the limit.

When the server cannot be reached the call goes ahead (fail-open) and the failure is logged.
A failed check (refused, timed out, an answer that is not JSON) pauses the checks of the whole
process for ``_BACKOFF_S``, whatever the call's user or model: a hanging server costs one call
the check's timeout per pause, not one per new user. The first call after the pause asks again.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sightline.errors import BudgetExceeded
from sightline.sdk._errors import logger
from sightline.sdk._tracing import _TRACE_ATTRS

__all__ = ["BudgetGuard", "Ticket", "admit", "guard", "release", "set_guard"]

_WAIT_S = 60.0  # the longest a call waits for calls in flight before it goes ahead anyway
_MAX_SCOPES = 10_000
"""Scopes (user, tenant, feature, model) whose answers are kept before idle ones are dropped."""
_IDLE_S = 300.0
"""An answer this old is dropped, with its ledgers (the calls they count are on the server)."""
_BACKOFF_S = 30.0
"""After a failed check no call of the process is checked for this long (they go ahead)."""


@dataclass(slots=True)
class _Ledger:
    """One budget (name, scope value, period) as this process sees it."""

    name: str
    limit_usd: float
    spent_usd: float = 0.0
    max_request_usd: float = 0.0
    completed: int = 0
    in_flight: int = 0


@dataclass(slots=True)
class _Snapshot:
    fetched_at: float
    ttl_s: float
    budgets: list[str] = field(default_factory=list)
    """Ids of the hard budgets that apply to this scope."""


Ticket = tuple[str, ...]
"""The ledgers a call holds a place in."""


class BudgetGuard:
    """Admission of LLM calls against the hard budgets of the server (see the module doc)."""

    def __init__(
        self,
        endpoint: str,
        api_key: str | None,
        *,
        cache_s: float = 5.0,
        timeout_s: float = 2.0,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self._url = endpoint.rstrip("/") + "/api/v1/budgets/check"
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.cache_s = cache_s
        self._timeout_s = timeout_s
        self._flush = flush
        self._cond = threading.Condition()
        # One refresh at a time: two interleaved ones would each subtract the same finished
        # calls from the ledger (or apply an older answer after a newer one).
        self._refresh_lock = threading.Lock()
        self._snapshots: dict[tuple[str | None, ...], _Snapshot] = {}
        self._ledgers: dict[str, _Ledger] = {}
        self._pruned_at = 0.0
        self.num_checks = 0
        """Requests made to the server."""
        self._warned = False
        self._down_until = 0.0
        """Monotonic time until which checks are skipped (the last one failed)."""

    @staticmethod
    def scope(model: str | None) -> tuple[str | None, ...]:
        """The scope values of a call: the enclosing trace's user, tenant, feature; the model."""
        a = _TRACE_ATTRS.get()
        return (
            a.get("sightline.user_id"),
            a.get("sightline.tenant_id"),
            a.get("sightline.feature"),
            model,
        )

    def admit(self, model: str | None) -> Ticket:
        """Take a place for one call, or raise BudgetExceeded (waits for calls in flight)."""
        key = self.scope(model)
        deadline = time.monotonic() + _WAIT_S
        refreshed = False
        exact = False
        while True:
            with self._cond:
                snap = self._snapshots.get(key)
                if snap is not None and (
                    refreshed or time.monotonic() - snap.fetched_at < snap.ttl_s
                ):
                    verdict, ledger = self._verdict(snap)
                    if verdict == "ok" or time.monotonic() > deadline:
                        for bid in snap.budgets:
                            self._ledgers[bid].in_flight += 1
                        return tuple(snap.budgets)
                    if verdict == "deny" and ledger is not None:
                        raise BudgetExceeded(
                            f"budget {ledger.name!r} is spent: ${ledger.spent_usd:.6f} of "
                            f"${ledger.limit_usd:g}",
                            budget=ledger.name,
                            limit_usd=ledger.limit_usd,
                            spent_usd=ledger.spent_usd,
                        )
                    if verdict == "wait":
                        self._cond.wait(max(0.0, deadline - time.monotonic()))
                        refreshed = False
                        continue
                    exact = True  # the estimate says no: ask with this process's spans sent
            if not self._refresh(key, exact=exact):
                return ()  # the server did not answer (now or lately): fail open
            refreshed = True

    def _verdict(self, snap: _Snapshot) -> tuple[str, _Ledger | None]:
        """ok, deny, wait (for calls in flight) or refresh (the estimate says no)."""
        worst = "ok"
        order = {"ok": 0, "wait": 1, "refresh": 2, "deny": 3}
        culprit = None
        for bid in snap.budgets:
            lg = self._ledgers[bid]
            if lg.spent_usd >= lg.limit_usd:
                v = "deny"
            elif lg.max_request_usd <= 0:
                v = (
                    "ok"
                    if lg.completed + lg.in_flight == 0
                    else ("refresh" if lg.completed else "wait")
                )
            elif lg.spent_usd + (lg.completed + lg.in_flight) * lg.max_request_usd < lg.limit_usd:
                v = "ok"
            else:
                v = "refresh" if lg.completed else "wait"
            if order[v] > order[worst]:
                worst, culprit = v, lg
        return worst, culprit

    def after_fork(self) -> None:
        """In a forked child: fresh locks, and none of the parent's calls in flight.

        A lock another thread of the parent held at the fork stays held in the child for
        ever, and the parent's calls in flight never end here (a call would wait up to
        ``_WAIT_S`` for them). What the parent knew of the budgets is kept.
        """
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        for lg in self._ledgers.values():
            lg.in_flight = 0

    def release(self, ticket: Ticket) -> None:
        """The call is over (its span ended): it counts as completed until the next answer."""
        if not ticket:
            return
        with self._cond:
            for bid in ticket:
                lg = self._ledgers.get(bid)
                if lg is not None:
                    lg.in_flight = max(0, lg.in_flight - 1)
                    lg.completed += 1
            self._cond.notify_all()

    def _refresh(self, key: tuple[str | None, ...], *, exact: bool) -> bool:
        """Ask the server again; ``exact`` first sends this process's ended spans.

        Without the flush, calls this process finished may not be in the server's figure yet,
        so they stay counted here too (counted twice at worst, never missed). False when the
        server did not answer, or failed to within the last ``_BACKOFF_S``: the call goes ahead.
        """
        if time.monotonic() < self._down_until:
            return False
        with self._refresh_lock:
            # another thread's check may have failed while this one waited for the lock
            if time.monotonic() < self._down_until:
                return False
            return self._refresh_locked(key, exact=exact)

    def _refresh_locked(self, key: tuple[str | None, ...], *, exact: bool) -> bool:
        with self._cond:
            marks = {bid: lg.completed for bid, lg in self._ledgers.items()} if exact else {}
        if exact and self._flush is not None:
            self._flush()
        data = self._fetch(key)
        if data is None:
            # no check for a while, for any scope: a hanging server costs one call the check's
            # timeout per pause, not one per new user (tenant, feature, model)
            self._down_until = time.monotonic() + _BACKOFF_S
            return False
        self._down_until = 0.0
        with self._cond:
            snap = _Snapshot(time.monotonic(), self.cache_s)
            for b in data.get("budgets", []):
                if not b.get("hard"):
                    continue
                bid = f"{b['name']}\0{b.get('scope_value')}\0{b['period_start']}"
                lg = self._ledgers.get(bid)
                if lg is None:
                    lg = self._ledgers[bid] = _Ledger(b["name"], float(b["limit_usd"]))
                lg.limit_usd = float(b["limit_usd"])
                # spend only grows within a period: a lower figure is an older answer
                lg.spent_usd = max(lg.spent_usd, float(b["spent_usd"]))
                lg.max_request_usd = max(lg.max_request_usd, float(b["max_request_usd"]))
                # calls completed before the flush are in the server's figure now
                lg.completed = max(0, lg.completed - marks.get(bid, 0))
                snap.budgets.append(bid)
            self._snapshots[key] = snap
            if len(self._snapshots) > _MAX_SCOPES:
                self._prune(snap.fetched_at)
            self._cond.notify_all()
        return True

    def _prune(self, now: float) -> None:
        """Forget idle scopes and the ledgers only they used. Under ``_cond``.

        Each user (and each day of a daily budget) has its own: a long-running process would
        otherwise keep them all.
        """
        if now - self._pruned_at < min(_IDLE_S, 30.0):
            return
        self._pruned_at = now
        self._snapshots = {
            k: s for k, s in self._snapshots.items() if now - s.fetched_at < max(s.ttl_s, _IDLE_S)
        }
        used = {bid for s in self._snapshots.values() for bid in s.budgets}
        self._ledgers = {b: lg for b, lg in self._ledgers.items() if b in used or lg.in_flight}

    def _fetch(self, key: tuple[str | None, ...]) -> dict[str, Any] | None:
        params = {
            k: v
            for k, v in zip(("user", "tenant", "feature", "model"), key, strict=True)
            if v is not None
        }
        url = self._url + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, headers=self._headers)  # noqa: S310 - our endpoint
        self.num_checks += 1
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as r:  # noqa: S310
                data = json.loads(r.read())
                if not isinstance(data, dict):
                    raise ValueError("the answer is not a JSON object")
                self._warned = False
                return data
        except (OSError, ValueError, urllib.error.URLError) as e:
            if not self._warned:  # once per outage
                self._warned = True
                logger.warning(
                    "sightline budget check failed (calls go ahead, unchecked for %g s): %s",
                    _BACKOFF_S,
                    e,
                )
            return None


_guard: BudgetGuard | None = None


def set_guard(g: BudgetGuard | None) -> None:
    """Install (or remove) the process's guard; ``init`` does."""
    global _guard
    _guard = g


def _after_fork_in_child() -> None:
    g = _guard
    if g is not None:
        g.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def guard() -> BudgetGuard | None:
    """The process's guard, if budgets are checked."""
    return _guard


def admit(model: Any) -> Ticket | None:
    """Before an instrumented call: a ticket, None when unchecked; raises BudgetExceeded."""
    g = _guard
    if g is None:
        return None
    try:
        return g.admit(model if isinstance(model, str) else None)
    except BudgetExceeded:
        raise
    except Exception:  # the guard must never break the app's call: fail open
        from sightline.sdk._errors import internal_error

        internal_error("budget_check")
        return None


def release(ticket: Ticket | None) -> None:
    """After the call's span ended."""
    g = _guard
    if g is not None and ticket:
        try:
            g.release(ticket)
        except Exception:
            from sightline.sdk._errors import internal_error

            internal_error("budget_release")
