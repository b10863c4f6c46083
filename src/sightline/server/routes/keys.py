"""API keys of the caller's project: list, create (shown once), revoke (effective at once)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from sightline.errors import Conflict, NotFound
from sightline.server._auth import hash_key, new_key
from sightline.server._security import actor_of, new_audit
from sightline.server._state import AdminKey, state_of
from sightline.store.base import ApiKey

router = APIRouter(prefix="/api/v1", tags=["keys"])


def _view(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "prefix": k.prefix,
        "name": k.name,
        "role": k.role,
        "created_at": k.created_at.isoformat(),
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


class KeyIn(BaseModel):
    """A new key."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["ingest", "read", "admin"] = Field(
        description="ingest: send telemetry only; read: GET only; admin: everything."
    )
    name: str | None = Field(None, max_length=100, description="What the key is for.")


@router.get("/keys", summary="The project's API keys (never the keys themselves)")
async def list_keys(request: Request, key: AdminKey) -> dict[str, Any]:
    """Every key of the project, revoked ones too, with its last-used time."""
    st = state_of(request)
    await run_in_threadpool(st.keys.flush_last_used)
    keys = await run_in_threadpool(st.store.list_api_keys, key.project_id)
    return {"data": [_view(k) for k in keys]}


@router.post("/keys", status_code=201, summary="Create an API key (shown once)")
async def create_key(body: KeyIn, request: Request, key: AdminKey) -> dict[str, Any]:
    """A new key of the project; the response is the only time the key is shown."""
    st = state_of(request)
    secret = new_key()
    rec = ApiKey(
        hash_key(secret), secret[:10], key.project_id, body.role, datetime.now(UTC), body.name
    )
    await run_in_threadpool(st.store.add_api_key, rec)
    st.keys.forget_new_keys()
    await run_in_threadpool(
        st.store.add_audit,
        new_audit(key.project_id, actor_of(key), "key.create", rec.key_id,
                  {"role": body.role, "name": body.name}),
    )  # fmt: skip
    request.state.audited = True
    return {**_view(rec), "key": secret}


@router.delete("/keys/{key_id}", summary="Revoke an API key (at once)")
async def revoke_key(
    request: Request,
    key: AdminKey,
    key_id: str = Path(max_length=64),
) -> dict[str, Any]:
    """Revoke a key of the project; requests with it get 401 from now on.

    The project's last live admin key cannot be revoked (409): nobody could manage it after.
    """
    st = state_of(request)
    keys = await run_in_threadpool(st.store.list_api_keys, key.project_id)
    target = next((k for k in keys if k.key_id == key_id and k.revoked_at is None), None)
    if target is None:
        raise NotFound(f"no live key {key_id!r} in this project")
    admins = [k for k in keys if k.role == "admin" and k.revoked_at is None]
    if target.role == "admin" and len(admins) == 1:
        raise Conflict("this is the project's last admin key; create another admin key first")
    revoked = await run_in_threadpool(st.store.revoke_api_key, key.project_id, key_id)
    if revoked is None:
        raise NotFound(f"no live key {key_id!r} in this project")
    st.keys.forget(revoked.key_hash)
    await run_in_threadpool(
        st.store.add_audit,
        new_audit(key.project_id, actor_of(key), "key.revoke", key_id, {"role": revoked.role}),
    )
    request.state.audited = True
    return {**_view(revoked), "revoked_at": datetime.now(UTC).isoformat()}


__all__ = ["router"]
