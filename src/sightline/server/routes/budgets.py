"""Budgets: CRUD, and the check the SDK and the gateway make before spending."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from sightline.budgets import BudgetService, parse_budget
from sightline.errors import ConfigError, NotFound
from sightline.server._state import project_of, state_of
from sightline.store.base import BudgetRow

router = APIRouter(prefix="/api/v1/budgets", tags=["budgets"])

_Value = Annotated[str | None, Query(max_length=200)]


def _service(request: Request) -> BudgetService:
    b = state_of(request).budgets
    if b is None:
        raise NotFound("budgets are not running")
    return b


def _view(svc: BudgetService, row: BudgetRow) -> dict[str, Any]:
    spec = parse_budget(row.spec)
    return {
        **spec.model_dump(),
        "source": row.source,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "status": [s.to_dict() for s in svc.statuses(row.project_id, spec)],
    }


@router.get("", summary="List budgets with their spend this period")
async def list_budgets(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Every budget of the project; ``status`` is its spend per scope value this period."""
    svc = _service(request)

    def work() -> list[dict[str, Any]]:
        return [_view(svc, r) for r in svc.list_budgets(project_id)]

    return {"data": await run_in_threadpool(work)}


@router.get("/check", summary="May a call be made? (SDK and gateway)")
async def check_budgets(
    request: Request,
    user: _Value = None,
    tenant: _Value = None,
    feature: _Value = None,
    model: _Value = None,
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """The budgets that apply to a call with these scope values, and whether it is allowed.

    ``allowed`` is false when a budget with a hard limit is spent; ``blocked_by`` names it.
    """
    values = {"user": user, "tenant": tenant, "feature": feature, "model": model}
    return await check_answer(_service(request), project_id, values)


async def check_answer(
    svc: BudgetService, project_id: str, values: dict[str, str | None]
) -> dict[str, Any]:
    """The answer of the check (also what the gateway mounted in the server gets)."""
    statuses = await run_in_threadpool(svc.check, project_id, values)
    blocked = [s for s in statuses if s.spec.hard and s.exceeded]
    return {
        "project": project_id,
        "allowed": not blocked,
        "blocked_by": blocked[0].spec.name if blocked else None,
        "budgets": [s.to_dict() for s in statuses],
    }


@router.post("", status_code=201, summary="Create a budget")
async def create_budget(
    request: Request,
    spec: Annotated[dict[str, Any], Body()],
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Create a budget (409 if the name exists)."""
    svc = _service(request)

    def work() -> dict[str, Any]:
        return _view(svc, svc.put_budget(project_id, spec, create=True))

    return await run_in_threadpool(work)


@router.get("/{name}", summary="Get a budget")
async def get_budget(
    request: Request, name: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """One budget with its spend this period."""
    svc = _service(request)
    return await run_in_threadpool(lambda: _view(svc, svc.get_budget(project_id, name)))


@router.put("/{name}", summary="Create or replace a budget")
async def put_budget(
    request: Request,
    name: str,
    spec: Annotated[dict[str, Any], Body()],
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Replace a budget (409 for a budget of the budgets file)."""
    if spec.setdefault("name", name) != name:
        raise ConfigError("the body's name differs from the URL's")
    svc = _service(request)
    return await run_in_threadpool(lambda: _view(svc, svc.put_budget(project_id, spec)))


@router.delete("/{name}", summary="Delete a budget")
async def delete_budget(
    request: Request, name: str, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Delete a budget (404 if none, 409 for a budget of the budgets file)."""
    await run_in_threadpool(_service(request).delete_budget, project_id, name)
    return {"name": name, "deleted": True}
