"""The prompt registry: versioned templates (and judge rubrics), labels, rendering."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, NotFound
from sightline.model import PromptVersion
from sightline.prompts import (
    KINDS,
    LABEL_PATTERN,
    NAME_PATTERN,
    MissingVariables,
    render,
    template_type,
    validate_template,
)
from sightline.server._params import check_json
from sightline.server._state import key_of, project_of, state_of
from sightline.store.base import ApiKey

router = APIRouter(prefix="/api/v1/prompts", tags=["prompts"])

_RESERVED_NAMES = frozenset(("resolve",))
"""Path segments of the registry's own routes, not usable as prompt names."""
_MAX_TEMPLATE_CHARS = 200_000
_MAX_PARAMETERS_CHARS = 20_000

Key = Annotated[ApiKey, Depends(key_of)]
"""The request's key (its project and id, for the author of a change)."""
NamePath = Path(pattern=NAME_PATTERN, description="The prompt's name.")


class PromptIn(BaseModel):
    """A new version of a prompt (the prompt is created by its first version)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["prompt", "rubric"] = "prompt"
    template: str | list[dict[str, Any]] = Field(
        description="Text, or chat messages [{role, content}], with {{variable}} placeholders."
    )
    model: str | None = Field(None, max_length=200)
    parameters: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list, max_length=20)
    author: str | None = Field(None, max_length=200)
    message: str | None = Field(None, max_length=2000)

    @field_validator("template")
    @classmethod
    def _template(cls, v: object) -> object:
        t = validate_template(v)
        size = (
            len(t)
            if isinstance(t, str)
            else sum(len(m["content"]) + len(m.get("name", "")) for m in t)
        )
        if size > _MAX_TEMPLATE_CHARS:
            raise ValueError(f"template is longer than {_MAX_TEMPLATE_CHARS} characters")
        return check_json(t, "template")  # after the size check: it walks every value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v: dict[str, Any]) -> dict[str, Any]:
        import json

        if len(json.dumps(v)) > _MAX_PARAMETERS_CHARS:
            raise ValueError(f"parameters are larger than {_MAX_PARAMETERS_CHARS} characters")
        check_json(v, "parameters")  # after the size check: it walks every value
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        return [_check_label(label) for label in dict.fromkeys(v)]


class LabelIn(BaseModel):
    """Where a label points."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class RenderIn(BaseModel):
    """Variables to fill a version with (by number or label; default the latest)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1)
    label: str | None = None
    variables: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


def _check_label(label: str) -> str:
    import re

    if not re.match(LABEL_PATTERN, label):
        raise ValueError(f"label {label!r}: lowercase letters, digits, '_', '.', '-' (max 64)")
    if label == "latest":
        raise ValueError("'latest' is not a label one sets: it always means the newest version")
    return label


def _actor(key: ApiKey, author: str | None) -> str:
    return author or f"key:{key.key_id}"


async def _resolve(
    request: Request, project_id: str, name: str, version: int | None, label: str | None
) -> PromptVersion:
    if version is not None and label is not None:
        raise ConfigError("give version or label, not both")
    pv = await run_in_threadpool(
        state_of(request).store.get_prompt_version, project_id, name, version=version, label=label
    )
    if pv is None:
        what = f"version {version}" if version else f"label {label!r}" if label else "versions"
        raise NotFound(f"prompt {name!r} has no {what}")
    return pv


def new_prompt_version(project_id: str, body: PromptIn, *, author: str | None) -> PromptVersion:
    """The version ``body`` describes, to append (the store assigns its number), made now.

    One place for the REST API and the dashboard's editor to build it.
    """
    return PromptVersion(
        project_id=project_id,
        name=body.name,
        version=0,
        kind=body.kind,
        type=template_type(body.template),
        template=body.template,
        model=body.model,
        parameters=body.parameters,
        author=author,
        message=body.message,
        created_at=datetime.now(UTC),
    )


@router.post("", status_code=201, summary="Create a prompt version")
async def create_version(body: PromptIn, request: Request, key: Key) -> dict[str, Any]:
    """Append a version to prompt ``name`` (version 1 creates it) and point ``labels`` at it.

    The version number is assigned (the last + 1); versions are never edited. 409 if the name
    exists as the other ``kind``.
    """
    if body.name in _RESERVED_NAMES:
        raise ConfigError(f"{body.name!r} is reserved; choose another name")
    pv = new_prompt_version(key.project_id, body, author=_actor(key, body.author))
    saved = await run_in_threadpool(
        lambda: state_of(request).store.add_prompt_version(
            pv, labels=body.labels, updated_by=_actor(key, body.author)
        )
    )
    return saved.to_dict()


@router.get("", summary="List prompts")
async def list_prompts(
    request: Request,
    project_id: str = Depends(project_of),
    kind: str | None = Query(None, description="prompt or rubric; default both"),
) -> dict[str, Any]:
    """Every prompt: its kind, latest version and where its labels point."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind: expected one of {', '.join(KINDS)}")
    rows = await run_in_threadpool(state_of(request).store.list_prompts, project_id, kind)
    return {"data": [r.to_dict() for r in rows]}


@router.get("/resolve", summary="Fetch a prompt version (SDK)")
async def resolve(
    request: Request,
    project_id: str = Depends(project_of),
    name: str = Query(pattern=NAME_PATTERN),
    version: int | None = Query(None, ge=1),
    label: str | None = Query(None),
) -> dict[str, Any]:
    """What ``sightline.get_prompt`` calls: the same answer as ``GET /prompts/{name}``.

    It also accepts ``ingest`` keys, the key an application holds.
    """
    return (await _resolve(request, project_id, name, version, label)).to_dict()


@router.get("/{name}", summary="Get a prompt version")
async def get_version(
    request: Request,
    name: str = NamePath,
    project_id: str = Depends(project_of),
    version: int | None = Query(None, ge=1),
    label: str | None = Query(None, description="production, staging...; latest = newest"),
) -> dict[str, Any]:
    """One version: by number, by label, or (neither given) the latest."""
    return (await _resolve(request, project_id, name, version, label)).to_dict()


@router.get("/{name}/versions", summary="List a prompt's versions")
async def list_versions(
    request: Request, name: str = NamePath, project_id: str = Depends(project_of)
) -> dict[str, Any]:
    """Every version, oldest first, each with the labels pointing at it now."""
    rows = await run_in_threadpool(state_of(request).store.list_prompt_versions, project_id, name)
    if not rows:
        raise NotFound(f"prompt {name!r} not found")
    return {"data": [r.to_dict() for r in rows]}


@router.put("/{name}/labels/{label}", summary="Point a label at a version")
async def set_label(
    body: LabelIn,
    request: Request,
    key: Key,
    name: str = NamePath,
    label: str = Path(),
) -> dict[str, Any]:
    """Move ``label`` (e.g. ``production``) to ``version``; a label points at one version."""
    try:
        _check_label(label)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    prev = await run_in_threadpool(
        lambda: state_of(request).store.set_prompt_label(
            key.project_id,
            name,
            label,
            body.version,
            at=datetime.now(UTC),
            updated_by=f"key:{key.key_id}",
        )
    )
    return {"name": name, "label": label, "version": body.version, "previous_version": prev}


@router.delete("/{name}/labels/{label}", summary="Remove a label")
async def delete_label(
    request: Request,
    name: str = NamePath,
    label: str = Path(),
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Remove ``label`` from the prompt (404 if it has no such label)."""
    prev = await run_in_threadpool(
        state_of(request).store.delete_prompt_label, project_id, name, label
    )
    if prev is None:
        raise NotFound(f"prompt {name!r} has no label {label!r}")
    return {"name": name, "label": label, "previous_version": prev}


@router.post("/{name}/render", summary="Render a prompt version")
async def render_version(
    body: RenderIn,
    request: Request,
    name: str = NamePath,
    project_id: str = Depends(project_of),
) -> dict[str, Any]:
    """Fill a version's ``{{variables}}``; 400 naming the missing ones."""
    request.state.audited = True  # a POST that changes nothing: not an admin action to log
    pv = await _resolve(request, project_id, name, body.version, body.label)
    for k, v in body.variables.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"variables.{k}: NaN and Infinity are not values a prompt can hold")
    # JSON values as JSON text (true, not Python's True); strings as they are; null as ""
    variables = {
        k: "" if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
        for k, v in body.variables.items()
    }
    try:
        out = render(pv.template, variables)
    except MissingVariables as e:
        raise ConfigError(f"prompt {name!r} version {pv.version}: {e}") from None
    return {
        "name": pv.name,
        "version": pv.version,
        "type": pv.type,
        "model": pv.model,
        "parameters": pv.parameters,
        "prompt" if pv.type == "text" else "messages": out,
    }
