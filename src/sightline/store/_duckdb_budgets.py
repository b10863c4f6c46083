"""Budgets, their spend and the thresholds already alerted (DuckDB SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from sightline.model import Delivery
from sightline.store._duckdb_alerts import SAVE_DELIVERY, delivery_row
from sightline.store._duckdb_security import _admin, _as_store_error, _ts
from sightline.store.base import BudgetRow, BudgetSpend

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

__all__ = [
    "budget_spend",
    "budget_spend_by",
    "budget_spend_each",
    "delete_budget",
    "list_budgets",
    "mark_budget_alert",
    "put_budget",
]

# The span columns a budget can be scoped by, as SQL (never interpolated from user input
# otherwise). A model budget counts a call by the model it asked for, the name the SDK and the
# gateway check with: ``model`` is the answer's (``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``).
_COLUMNS = {
    "user_id": "user_id",
    "tenant_id": "tenant_id",
    "feature": "feature",
    "model": "coalesce(request_model, model)",
}


def _column(column: str) -> str:
    if column not in _COLUMNS:
        raise ValueError(f"not a budget scope column: {column!r}")
    return _COLUMNS[column]


def list_budgets(store: DuckDBStore, project_id: str) -> list[BudgetRow]:
    with _as_store_error("list budgets"), store._cursor() as cur:
        rows = cur.execute(
            "SELECT name, spec, source, created_at, updated_at FROM budgets"
            " WHERE project_id = ? ORDER BY name",
            [project_id],
        ).fetchall()
    return [
        BudgetRow(
            project_id,
            r[0],
            orjson.loads(r[1]),
            r[2],
            r[3].replace(tzinfo=UTC),
            r[4].replace(tzinfo=UTC),
        )
        for r in rows
    ]


def put_budget(store: DuckDBStore, row: BudgetRow) -> None:
    def work(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(
            "INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, name)"
            " DO UPDATE SET spec = excluded.spec, source = excluded.source,"
            " updated_at = excluded.updated_at",
            [
                row.project_id,
                row.name,
                orjson.dumps(row.spec).decode(),
                row.source,
                _ts(row.created_at),
                _ts(row.updated_at),
            ],
        )

    with _as_store_error("save budget"):
        _admin(store, work)


def delete_budget(store: DuckDBStore, project_id: str, name: str) -> bool:
    def work(cur: duckdb.DuckDBPyConnection) -> bool:
        n = cur.execute(
            "DELETE FROM budgets WHERE project_id = ? AND name = ? RETURNING name",
            [project_id, name],
        ).fetchall()
        return bool(n)

    with _as_store_error("delete budget"):
        return _admin(store, work)


def budget_spend(
    store: DuckDBStore,
    project_id: str,
    since: datetime,
    column: str | None,
    value: str | None,
    until: datetime | None = None,
) -> BudgetSpend:
    sql = (
        "SELECT coalesce(sum(cost_usd), 0), count(cost_usd), coalesce(max(cost_usd), 0)"
        " FROM spans WHERE project_id = ? AND start_time >= ? AND cost_usd IS NOT NULL"
    )
    params: list[Any] = [project_id, _ts(since)]
    if until is not None:
        sql += " AND start_time < ?"
        params.append(_ts(until))
    if column is not None:
        sql += f" AND {_column(column)} = ?"
        params.append(value)
    with _as_store_error("budget spend"), store._cursor() as cur:
        r = cur.execute(sql, params).fetchall()[0]
    return BudgetSpend(float(r[0]), int(r[1]), float(r[2]))


def budget_spend_by(
    store: DuckDBStore,
    project_id: str,
    since: datetime,
    column: str,
    until: datetime | None = None,
) -> dict[str, float]:
    each = budget_spend_each(store, project_id, since, column, until)
    return {k: v.spent_usd for k, v in each.items()}


def budget_spend_each(
    store: DuckDBStore,
    project_id: str,
    since: datetime,
    column: str,
    until: datetime | None = None,
) -> dict[str, BudgetSpend]:
    col = _column(column)
    params: list[Any] = [project_id, _ts(since)]
    bound = ""
    if until is not None:
        bound = " AND start_time < ?"
        params.append(_ts(until))
    sql = (
        f"SELECT {col}, sum(cost_usd), count(cost_usd), max(cost_usd) FROM spans"  # noqa: S608 - col is from _COLUMNS
        f" WHERE project_id = ? AND start_time >= ?{bound} AND cost_usd IS NOT NULL"
        f" AND {col} IS NOT NULL GROUP BY {col}"
    )
    with _as_store_error("budget spend"), store._cursor() as cur:
        rows = cur.execute(sql, params).fetchall()
    return {str(r[0]): BudgetSpend(float(r[1]), int(r[2]), float(r[3])) for r in rows}


def mark_budget_alert(
    store: DuckDBStore,
    project_id: str,
    budget: str,
    scope_value: str,
    period_start: datetime,
    threshold: float,
    spent_usd: float,
    at: datetime,
    deliveries: Sequence[Delivery] = (),
) -> bool:
    def work(cur: duckdb.DuckDBPyConnection) -> bool:
        n = cur.execute(
            "INSERT INTO budget_alerts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            " RETURNING budget",
            [project_id, budget, scope_value, _ts(period_start), threshold, spent_usd, _ts(at)],
        ).fetchall()
        if n:
            for d in deliveries:  # a few rows: one per channel of the budget
                cur.execute(SAVE_DELIVERY, delivery_row(d))
        return bool(n)

    with _as_store_error("mark budget alert"):
        return _admin(store, work)
