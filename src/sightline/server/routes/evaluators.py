"""Evaluators: which are registered and running, and how well each agrees with people."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from sightline.evals import agreement_by_evaluator, available_evaluators
from sightline.server._state import project_of, state_of

router = APIRouter(prefix="/api/v1", tags=["evaluators"])


@router.get("/evaluators", summary="Registered evaluators and the online runner")
async def list_evaluators(
    request: Request, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Every registered evaluator, the ones running online (with versions) and the runner's lag."""
    runner = state_of(request).evals
    online = (
        [
            {
                "name": e.name,
                "version": e.version,
                "sample_rate": runner.options.sample_rates.get(e.name, runner.options.sample_rate),
            }
            for e in runner.evaluators
        ]
        if runner
        else []
    )
    return {
        "registered": available_evaluators(),
        "online": online,
        "eval_lag_s": runner.lag_s() if runner else None,
    }


@router.get("/evaluators/agreement", summary="Agreement of each evaluator with human labels")
async def get_agreement(request: Request, project_id: str = Depends(project_of)) -> dict[str, Any]:
    """Accuracy and Cohen's kappa of ``passed``, per score name, and the confusion counts.

    Computed on spans that have both an evaluator score and a human label of that name (the
    latest of each).
    """
    pairs = await run_in_threadpool(state_of(request).store.list_agreement_pairs, project_id)
    return {"data": [a.to_dict() for a in agreement_by_evaluator(pairs)]}
