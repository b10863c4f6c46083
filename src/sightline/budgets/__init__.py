"""Budgets per project, user, tenant, feature or model: threshold alerts and hard limits."""

from sightline.budgets._service import BudgetService, BudgetStatus
from sightline.budgets._spec import (
    SCOPE_COLUMNS,
    BudgetSpec,
    crossed,
    load_budgets_file,
    parse_budget,
    period_bounds,
)

__all__ = [
    "SCOPE_COLUMNS",
    "BudgetService",
    "BudgetSpec",
    "BudgetStatus",
    "crossed",
    "load_budgets_file",
    "parse_budget",
    "period_bounds",
]
