"""Privacy: a project's redaction policy and retention, user erasure (GDPR), the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.server._params import parse_time
from sightline.server._security import Security, actor_of, new_audit
from sightline.server._state import AdminKey, state_of
from sightline.store.base import ApiKey

router = APIRouter(prefix="/api/v1", tags=["privacy"])


def _security(request: Request) -> Security:
    sec = state_of(request).security
    if sec is None:  # pragma: no cover - create_app always builds it
        raise NotFound("privacy settings are not available")
    return sec


def _own_project(key: ApiKey, project_id: str) -> str:
    # Another project's settings are invisible, not forbidden: a key learns nothing of them.
    if project_id != key.project_id:
        raise NotFound(f"project {project_id!r} not found")
    return project_id


class PrivacyIn(BaseModel):
    """New privacy settings; a field left out keeps its value, null resets it to the default."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] | None = Field(
        None,
        description='Redaction policy: {"types": {"email": "mask"|"hash"|"drop"|"off", ...}, '
        '"fields": {"input": "default"|"mask"|"hash"|"drop"|"off", ...}}; null: server default.',
    )
    retention_days: int | None = Field(
        None, ge=0, le=36_500, description="Days spans are kept (0: forever); null: default."
    )

    @field_validator("retention_days", mode="before")
    @classmethod
    def _not_a_bool(cls, v: object) -> object:
        # pydantic reads true as 1: "retention on" would keep one day and purge the rest
        if isinstance(v, bool):
            raise ValueError("expected a number of days (0: forever), not a boolean")
        return v


@router.get("/projects/{project_id}/privacy", summary="A project's redaction policy and retention")
async def get_privacy(
    request: Request,
    key: AdminKey,
    project_id: str = Path(max_length=100),
) -> dict[str, Any]:
    """The policy ingest applies to the project's spans, and how long they are kept."""
    _own_project(key, project_id)
    return await run_in_threadpool(_security(request).privacy.describe, project_id)


@router.put("/projects/{project_id}/privacy", summary="Set a project's redaction and retention")
async def put_privacy(
    body: PrivacyIn,
    request: Request,
    key: AdminKey,
    project_id: str = Path(max_length=100),
) -> dict[str, Any]:
    """Replace the project's policy and/or retention; spans ingested from now on follow it."""
    _own_project(key, project_id)
    sec = _security(request)
    keep = frozenset(f for f in ("policy", "retention_days") if f not in body.model_fields_set)
    try:
        await run_in_threadpool(
            lambda: sec.privacy.update(
                project_id, policy=body.policy, retention_days=body.retention_days, keep=keep
            )
        )
    except ValueError as e:
        raise ConfigError(f"policy: {e}") from None
    st = state_of(request)
    await run_in_threadpool(
        st.store.add_audit,
        new_audit(
            project_id,
            actor_of(key),
            "privacy.update",
            project_id,
            body.model_dump(include=set(body.model_fields_set)),
        ),
    )
    request.state.audited = True
    return await run_in_threadpool(sec.privacy.describe, project_id)


# ``:path``: user ids may hold a "/" (``org/alice``), which the client sends as %2F and the
# server decodes before routing; without it such a user could never be erased (404).
@router.delete("/users/{user_id:path}/data", summary="Erase a user's data (GDPR)")
async def erase_user(
    request: Request,
    key: AdminKey,
    user_id: str = Path(min_length=1, max_length=256),
) -> dict[str, Any]:
    """Delete every trace of ``user_id`` in the key's project, its scores and their feedback.

    A trace is the user's when one of its spans has the user id. The audit log keeps a keyed
    hash of the user id, not the id.
    """
    st = state_of(request)
    deleted = await run_in_threadpool(st.store.erase_user, key.project_id, user_id)
    tag = _security(request).privacy.tag("user_id", user_id)
    await run_in_threadpool(
        st.store.add_audit,
        new_audit(
            key.project_id,
            actor_of(key),
            "user.erase",
            tag,
            {"spans": deleted.spans, "scores": deleted.scores},
        ),
    )
    request.state.audited = True
    return {"user": tag, "deleted_spans": deleted.spans, "deleted_scores": deleted.scores}


@router.get("/audit", summary="Audit log of admin actions, newest first")
async def list_audit(
    request: Request,
    key: AdminKey,
    limit: int = Query(100, ge=1, le=1000),
    before: str | None = Query(None, description="Epoch seconds or ISO-8601 (exclusive)."),
) -> dict[str, Any]:
    """Who changed keys, privacy settings, rules...; erasures and retention purges."""
    st = state_of(request)
    entries = await run_in_threadpool(
        lambda: st.store.list_audit(
            key.project_id, limit=limit, before=parse_time(before, "before")
        )
    )
    return {"data": [e.to_dict() for e in entries]}


__all__ = ["router"]
