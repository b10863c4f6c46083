"""Budgets of every project: CRUD, the check made before spending, and threshold alerts.

Threshold alerts come from a daemon tick; each threshold alerts once per period and scope value.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from sightline._clock import Clock, system_clock
from sightline._daemon import DaemonTask
from sightline.budgets._spec import (
    SCOPE_COLUMNS,
    BudgetSpec,
    crossed,
    parse_budget,
    period_bounds,
)
from sightline.errors import ConfigError, Conflict, NotFound, SightlineError
from sightline.model import Delivery
from sightline.store.base import BudgetRow, TraceStore

if TYPE_CHECKING:
    from sightline.alerts import Dispatcher

__all__ = ["BudgetService", "BudgetStatus"]

log = structlog.get_logger("sightline.budgets")


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands for one scope value, now."""

    spec: BudgetSpec
    scope_value: str | None
    period_start: datetime
    period_end: datetime
    spent_usd: float
    num_requests: int
    max_request_usd: float

    @property
    def remaining_usd(self) -> float:
        """What is left of the limit (never below 0)."""
        return max(0.0, self.spec.limit_usd - self.spent_usd)

    @property
    def exceeded(self) -> bool:
        """The limit is spent."""
        return self.spent_usd >= self.spec.limit_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.spec.name,
            "scope": self.spec.scope,
            "scope_value": self.scope_value,
            "period": self.spec.period,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "limit_usd": self.spec.limit_usd,
            "spent_usd": self.spent_usd,
            "remaining_usd": self.remaining_usd,
            "num_requests": self.num_requests,
            "max_request_usd": self.max_request_usd,
            "hard": self.spec.hard,
            "exceeded": self.exceeded,
        }


class BudgetService(DaemonTask):
    """Budgets over the store; ``tick`` (every ``interval_s``) sends the threshold alerts."""

    name = "budgets"

    def __init__(
        self,
        store: TraceStore,
        *,
        clock: Clock = system_clock,
        interval_s: float = 30.0,
        file_budgets: Sequence[BudgetSpec] = (),
        dispatcher: Dispatcher | None = None,
        public_url: str = "http://127.0.0.1:7600",
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._store = store
        self._clock = clock
        self._dispatcher = dispatcher
        self._public_url = public_url.rstrip("/")
        self._file = {b.name: b for b in file_budgets}
        self._synced: set[str] = set()
        self._lock = threading.Lock()
        # one change at a time: two creates of one name both found none and both answered 201
        self._write_lock = threading.Lock()
        self.num_alerts = 0
        """Threshold alerts sent since start."""

    # -- CRUD --------------------------------------------------------------------------------

    def _sync(self, project_id: str) -> None:
        """Write the budgets file's budgets into the project (once per process).

        A budget an earlier budgets file wrote and this one no longer has is deleted: the file
        says which budgets exist, and the API cannot delete a file's budget.
        """
        if not self._file or project_id in self._synced:
            return
        with self._lock:
            if project_id in self._synced:
                return
            now = self._clock()
            have = {r.name: r for r in self._store.list_budgets(project_id)}
            for name, spec in self._file.items():
                old = have.get(name)
                body = spec.model_dump()
                if old is None or old.spec != body or old.source != "file":
                    created = old.created_at if old else now
                    self._store.put_budget(BudgetRow(project_id, name, body, "file", created, now))
            for name, old in have.items():
                if old.source == "file" and name not in self._file:
                    self._store.delete_budget(project_id, name)
                    log.info("budget_removed_from_file", project=project_id, budget=name)
            self._synced.add(project_id)

    def _read_only(self, row: BudgetRow) -> bool:
        """Whether the budget is one of this server's budgets file, not the API's to change.

        One that a former budgets file wrote and this one does not have is the API's.
        """
        return row.source == "file" and row.name in self._file

    def list_budgets(self, project_id: str) -> list[BudgetRow]:
        """Every budget of the project."""
        self._sync(project_id)
        return self._store.list_budgets(project_id)

    def get_budget(self, project_id: str, name: str) -> BudgetRow:
        """One budget (NotFound otherwise)."""
        for r in self.list_budgets(project_id):
            if r.name == name:
                return r
        raise NotFound(f"no budget named {name!r}")

    def put_budget(self, project_id: str, raw: Any, *, create: bool = False) -> BudgetRow:
        """Create or replace a budget from untrusted input (409: exists on create, or a file's)."""
        spec = parse_budget(raw)
        self._check_channels(spec)
        with self._write_lock:
            now = self._clock()
            old = next((r for r in self.list_budgets(project_id) if r.name == spec.name), None)
            if old is not None and create:
                raise Conflict(f"a budget named {spec.name!r} exists")
            if old is not None and self._read_only(old):
                raise Conflict(f"budget {spec.name!r} comes from the budgets file: edit the file")
            row = BudgetRow(
                project_id, spec.name, spec.model_dump(), "api", old.created_at if old else now, now
            )
            self._store.put_budget(row)
        return row

    def _check_channels(self, spec: BudgetSpec) -> None:
        """400 for a channel the alerts file does not have (its alerts would go nowhere)."""
        known = self._dispatcher.channels if self._dispatcher is not None else {}
        unknown = [c for c in spec.notify if c not in known]
        if unknown:
            raise ConfigError(
                f"budget {spec.name}: unknown channel(s) {', '.join(unknown)};"
                f" configured: {', '.join(sorted(known)) or 'none'}"
            )

    def delete_budget(self, project_id: str, name: str) -> None:
        """Delete a budget (404 if none, 409 for a file's)."""
        with self._write_lock:
            old = self.get_budget(project_id, name)
            if self._read_only(old):
                raise Conflict(f"budget {name!r} comes from the budgets file: edit the file")
            self._store.delete_budget(project_id, name)

    # -- check -------------------------------------------------------------------------------

    def status(self, project_id: str, spec: BudgetSpec, value: str | None) -> BudgetStatus:
        """The budget's spend this period for one scope value (None: project scope)."""
        start, end = period_bounds(spec.period, self._clock())
        column = SCOPE_COLUMNS[spec.scope]
        # until the period's end: a span dated later (a client's clock ahead, or a year typo)
        # counts in its own period, not in every period until then
        sp = self._store.budget_spend(
            project_id, start, column=column, value=value if column else None, until=end
        )
        return BudgetStatus(
            spec, value, start, end, sp.spent_usd, sp.num_requests, sp.max_request_usd
        )

    def check(self, project_id: str, values: dict[str, str | None]) -> list[BudgetStatus]:
        """Every budget that applies to a call with these scope values (user, tenant, ...)."""
        out = []
        for row in self.list_budgets(project_id):
            try:
                spec = parse_budget(row.spec)
            except ConfigError:  # a stored spec from an older version: skip, not fail
                continue
            value = values.get(spec.scope) if spec.scope != "project" else None
            if spec.applies(value):
                out.append(self.status(project_id, spec, value))
        return out

    def statuses(self, project_id: str, spec: BudgetSpec) -> list[BudgetStatus]:
        """The budget's status for every scope value it covers that has spend this period."""
        column = SCOPE_COLUMNS[spec.scope]
        if column is None or spec.match != "*":
            return [self.status(project_id, spec, None if column is None else spec.match)]
        start, end = period_bounds(spec.period, self._clock())
        by = self._store.budget_spend_each(project_id, start, column, until=end)
        return [
            BudgetStatus(spec, v, start, end, s.spent_usd, s.num_requests, s.max_request_usd)
            for v, s in sorted(by.items())
        ]

    # -- threshold alerts --------------------------------------------------------------------

    def run_once(self) -> None:
        self.tick()

    def tick(self) -> None:
        """Alert every threshold reached and not alerted yet this period."""
        for p in self._store.list_projects():
            try:
                self._tick_project(p.id)
            except SightlineError as e:
                log.error("budget_tick_failed", project=p.id, error=str(e))

    def _tick_project(self, project_id: str) -> None:
        now = self._clock()
        for row in self.list_budgets(project_id):
            try:
                spec = parse_budget(row.spec)
            except ConfigError:
                continue
            for st in self.statuses(project_id, spec):
                for t in crossed(spec, st.spent_usd):
                    value = st.scope_value or ""
                    # the notifications are stored with the mark, in one transaction: a
                    # crash between the two left the threshold marked and never announced
                    deliveries = self._deliveries(project_id, st, t, now)
                    if self._store.mark_budget_alert(
                        project_id, spec.name, value, st.period_start, t, st.spent_usd, now,
                        deliveries,
                    ):  # fmt: skip
                        self._alerted(project_id, st, t)
                        if self._dispatcher is not None:
                            self._dispatcher.enqueue(deliveries)

    def _alerted(self, project_id: str, st: BudgetStatus, threshold: float) -> None:
        spec = st.spec
        self.num_alerts += 1
        log.warning(
            "budget_threshold_reached",
            project=project_id,
            budget=spec.name,
            scope_value=st.scope_value,
            threshold_pct=round(threshold * 100),
            spent_usd=st.spent_usd,
            limit_usd=spec.limit_usd,
        )

    def _deliveries(
        self, project_id: str, st: BudgetStatus, threshold: float, now: datetime
    ) -> list[Delivery]:
        spec = st.spec
        if self._dispatcher is None or not spec.notify:
            return []
        key = f"{project_id}\0{spec.name}\0{st.scope_value}\0{st.period_start}\0{threshold}"
        alert_id = "budget-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        pct = round(threshold * 100)
        group = {"budget": spec.name, "scope": spec.scope, "scope_value": st.scope_value or ""}
        payload = {
            "status": "firing",
            "rule": f"budget:{spec.name}",
            "severity": spec.severity,
            "labels": {**group, "threshold_pct": str(pct)},
            "group": group,
            "value": st.spent_usd,
            "threshold": threshold * spec.limit_usd,
            "window": spec.period,
            "started_at": now.isoformat(),
            "ended_at": None,
            "owner": None,
            "runbook": None,
            "dashboard_url": f"{self._public_url}/api/v1/budgets/{spec.name}",
            "summary": f"budget {spec.name} reached {pct}% of ${spec.limit_usd:g} "
            f"this {spec.period} (${st.spent_usd:.6f} spent)",
            "alert_id": alert_id,
            "project": project_id,
        }
        return self._dispatcher.prepare(project_id, alert_id, "firing", payload, spec.notify)
