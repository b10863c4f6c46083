"""Dashboard pages of the prompt registry: versions, labels, diffs, and the forms that edit them.

A prompt's (or an evaluation rubric's) page lists its versions, shows one and diffs two. The
forms validate exactly as ``POST /api/v1/prompts`` does (its :class:`PromptIn`); bad input
renders the form again with the problem named and a 4xx status. Only the project's admins edit;
viewers read.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sightline._digits import ascii_int
from sightline.errors import SightlineError
from sightline.model import PromptVersion
from sightline.prompts import KINDS, NAME_PATTERN, TEMPLATE_TYPES
from sightline.server._security import new_audit
from sightline.server._state import AppState, state_of
from sightline.server._web import Page, PageError, PageRoute, WebPage, check_csrf, render
from sightline.server.routes.pages_monitor import _is_project_admin, _project
from sightline.server.routes.prompts import (
    _RESERVED_NAMES,
    PromptIn,
    _check_label,
    new_prompt_version,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)


_NAME = Path(max_length=200)
_FORM_MAX = 400_000
"""Longest form field accepted (the registry's own limits are checked after)."""
SUGGESTED_LABELS = ("production", "staging")
_DIFF_CONTEXT = 3


@dataclass
class Draft:
    """The new-version form's values, as typed (kept when the form comes back with an error)."""

    name: str = ""
    kind: str = "prompt"
    format: str = "text"
    template: str = ""
    model: str = ""
    parameters: str = "{}"
    labels: str = ""
    message: str = ""
    existing: bool = False
    """A new version of a prompt that exists: its name and kind are fixed."""
    base_version: int | None = None


def _draft_from(pv: PromptVersion) -> Draft:
    """A form prefilled with a version, to edit into the next one."""
    chat = not isinstance(pv.template, str)
    return Draft(
        name=pv.name,
        kind=pv.kind,
        format="chat" if chat else "text",
        template=json.dumps(pv.template, indent=2, ensure_ascii=False)
        if chat
        else str(pv.template),
        model=pv.model or "",
        parameters=json.dumps(pv.parameters, indent=2, ensure_ascii=False, sort_keys=True),
        existing=True,
        base_version=pv.version,
    )


def _require_editor(st: AppState, page: Page) -> str:
    project = _project(page)
    if not _is_project_admin(st, page):
        raise PageError(403, "only the project's admins may change its prompts and rubrics")
    return project


def _version_number(raw: str | None, what: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        v = int(raw)
    except ValueError:
        raise PageError(400, f"{what}: expected a version number, got {raw[:40]!r}") from None
    if v < 1:
        raise PageError(400, f"{what}: versions start at 1")
    return v


def _parse_draft(d: Draft, author: str) -> PromptIn:
    """The form as the API's body; ValueError naming the first problem."""
    import re

    if not d.name:
        raise ValueError("name: give the prompt a name")
    if not re.match(NAME_PATTERN, d.name):
        raise ValueError(
            f"name {d.name[:60]!r}: letters, digits, '_', '.', '-', starting with a letter or "
            "digit, at most 128 characters"
        )
    if d.name in _RESERVED_NAMES:
        raise ValueError(f"name {d.name!r} is reserved; choose another name")
    if d.kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}")
    if d.format not in TEMPLATE_TYPES:
        raise ValueError(f"format: expected one of {', '.join(TEMPLATE_TYPES)}")
    template: object
    if d.format == "chat":
        try:
            template = json.loads(d.template)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"template: a chat template is a JSON list of messages "
                f'([{{"role": "system", "content": "..."}}, ...]): {e}'
            ) from None
    else:
        if not d.template.strip():
            raise ValueError("template: write the template (it is empty)")
        template = d.template
    raw = d.parameters.strip() or "{}"
    try:
        parameters = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"parameters: not valid JSON: {e}") from None
    if not isinstance(parameters, dict):
        raise ValueError('parameters: expected a JSON object, such as {"temperature": 0.2}')
    labels = [x for x in re.split(r"[,\s]+", d.labels.strip()) if x]
    try:
        return PromptIn(
            name=d.name,
            kind=d.kind,  # type: ignore[arg-type]  # checked above
            template=template,  # type: ignore[arg-type]  # validated by PromptIn
            model=d.model.strip() or None,
            parameters=parameters,
            labels=labels,
            author=author,
            message=d.message.strip() or None,
        )
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        msg = str(first.get("msg", "invalid"))
        raise ValueError(f"{loc}: {msg.removeprefix('Value error, ')}") from None


# -- pages ---------------------------------------------------------------------------------------


def _edit_page(
    request: Request, page: Page, draft: Draft, *, error: str | None = None, status: int = 200
) -> Response:
    return render(request, "prompt_edit.html", page=page, draft=draft, error=error,
                  status=status, kinds=KINDS, suggested=SUGGESTED_LABELS)  # fmt: skip


@router.get("/prompts/_new")
async def new_prompt(request: Request, page: WebPage) -> Response:
    """A blank form: a new prompt (or, with ``?kind=rubric``, a new rubric)."""
    await run_in_threadpool(_require_editor, state_of(request), page)
    kind = request.query_params.get("kind") or "prompt"
    if kind not in KINDS:
        raise PageError(400, f"kind: expected one of {', '.join(KINDS)}")
    return _edit_page(request, page, Draft(kind=kind))


@router.post("/prompts/_new")
async def create_version(
    request: Request,
    page: WebPage,
    csrf: str = Form("", max_length=100),
    name: str = Form("", max_length=300),
    kind: str = Form("prompt", max_length=20),
    format: str = Form("text", max_length=20),
    template: str = Form("", max_length=_FORM_MAX),
    model: str = Form("", max_length=300),
    parameters: str = Form("{}", max_length=_FORM_MAX),
    labels: str = Form("", max_length=2000),
    message: str = Form("", max_length=4000),
    existing: str = Form("", max_length=5),
    base_version: str = Form("", max_length=12),
) -> Response:
    """Append a version (the first one creates the prompt); author: the logged-in user."""
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_editor, st, page)
    # browsers send a textarea's line breaks as CRLF: the template keeps the \n typed
    template = template.replace("\r\n", "\n")
    draft = Draft(name=name.strip(), kind=kind, format=format, template=template, model=model,
                  parameters=parameters, labels=labels, message=message,
                  existing=existing == "1",
                  base_version=ascii_int(base_version))  # fmt: skip
    email = page.login.user.email
    try:
        body = _parse_draft(draft, email)
    except ValueError as e:
        return _edit_page(request, page, draft, error=str(e), status=400)
    pv = new_prompt_version(project, body, author=email)

    def work() -> PromptVersion:
        saved = st.store.add_prompt_version(pv, labels=body.labels, updated_by=f"user:{email}")
        st.store.add_audit(new_audit(project, f"user:{email}", "prompt.version.create",
                                     f"{saved.name}@{saved.version}",
                                     {"kind": saved.kind, "labels": body.labels}))  # fmt: skip
        return saved

    try:
        saved = await run_in_threadpool(work)
    except SightlineError as e:
        if e.status >= 500:
            raise
        return _edit_page(request, page, draft, error=str(e), status=e.status)
    return RedirectResponse(
        page.url(f"/prompts/{saved.name}", version=saved.version,
                 done=f"version {saved.version} created"),
        status_code=303,
    )  # fmt: skip


@router.get("/prompts/{name}/edit")
async def edit_prompt(request: Request, page: WebPage, name: str = _NAME) -> Response:
    """The form for the next version, prefilled with the latest (or ``?base=N``)."""
    st = state_of(request)
    project = await run_in_threadpool(_require_editor, st, page)
    base = _version_number(request.query_params.get("base"), "base")
    pv = await run_in_threadpool(lambda: st.store.get_prompt_version(project, name, version=base))
    if pv is None:
        raise PageError(404, f"prompt {name!r} has no version {base}" if base else
                        f"no prompt {name!r} in this project")  # fmt: skip
    return _edit_page(request, page, _draft_from(pv))


def _diff(a: PromptVersion, b: PromptVersion) -> list[tuple[str, str]]:
    """A unified line diff of two versions (model and parameters first), as (class, line)."""

    def lines(pv: PromptVersion) -> list[str]:
        head = [f"model: {pv.model or ''}",
                f"parameters: {json.dumps(pv.parameters, sort_keys=True, ensure_ascii=False)}",
                "---"]  # fmt: skip
        if isinstance(pv.template, str):
            return head + pv.template.splitlines()
        body: list[str] = []
        for m in pv.template:
            body += [f"[{m.get('role')}]", *str(m.get("content", "")).splitlines(), ""]
        return head + body

    out: list[tuple[str, str]] = []
    diff = difflib.unified_diff(lines(a), lines(b), f"version {a.version}", f"version {b.version}",
                                lineterm="", n=_DIFF_CONTEXT)  # fmt: skip
    for i, line in enumerate(diff):
        if i < 2:  # the ---/+++ header
            cls = "file"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        out.append((cls, line))
    return out


def _detail(st: AppState, page: Page, name: str) -> dict[str, Any]:
    project = _project(page)
    q = page.request.query_params
    versions = st.store.list_prompt_versions(project, name)
    if not versions:
        raise PageError(404, f"no prompt {name!r} in this project")
    by_number = {v.version: v for v in versions}
    selected_n = _version_number(q.get("version"), "version") or versions[-1].version
    if selected_n not in by_number:
        raise PageError(404, f"prompt {name!r} has no version {selected_n}")
    a_n = _version_number(q.get("a"), "a")
    b_n = _version_number(q.get("b"), "b")
    diff = None
    if a_n is not None or b_n is not None:
        if a_n is None or b_n is None:
            raise PageError(400, "a diff needs two versions: a and b")
        for n in (a_n, b_n):
            if n not in by_number:
                raise PageError(404, f"prompt {name!r} has no version {n}")
        diff = _diff(by_number[a_n], by_number[b_n])
    labels = {label: v.version for v in versions for label in v.labels}
    latest = versions[-1].version
    return {
        "name": name,
        "kind": versions[0].kind,
        "versions": list(reversed(versions)),  # newest first
        "selected": by_number[selected_n],
        "labels": dict(sorted(labels.items())),
        "known_labels": sorted({*SUGGESTED_LABELS, *labels}),
        "diff": diff,
        "a": a_n if a_n is not None else max(selected_n - 1, 1),
        "b": b_n if b_n is not None else selected_n if selected_n > 1 else latest,
        "editor": _is_project_admin(st, page),
    }


@router.get("/prompts/{name}")
async def prompt_detail(request: Request, page: WebPage, name: str = _NAME) -> Response:
    """A prompt's versions (newest first), one version's template, and a diff of two."""
    data = await run_in_threadpool(_detail, state_of(request), page, name)
    return render(request, "prompt.html", page=page, data=data, error=None,
                  flash=request.query_params.get("done"))  # fmt: skip


# -- labels --------------------------------------------------------------------------------------


async def _detail_error(
    request: Request, page: Page, name: str, error: str, status: int
) -> Response:
    """The prompt's page again, with the form's problem named (and its 4xx status)."""
    data = await run_in_threadpool(_detail, state_of(request), page, name)
    return render(request, "prompt.html", page=page, data=data, error=error, flash=None,
                  status=status)  # fmt: skip


@router.post("/prompts/{name}/labels")
async def set_label(
    request: Request,
    page: WebPage,
    name: str = _NAME,
    csrf: str = Form("", max_length=100),
    label: str = Form("", max_length=200),
    version: str = Form("", max_length=12),
) -> Response:
    """Point a label (``production``, ``staging``...) at a version."""
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_editor, st, page)
    label = label.strip()
    try:
        if not label:
            raise ValueError("label: name the label to move, such as production")
        _check_label(label)
        n = ascii_int(version.strip())
        if n is None or n < 1:
            raise ValueError(f"version: expected a version number, got {version[:40]!r}")
    except ValueError as e:
        return await _detail_error(request, page, name, str(e), 400)
    actor = f"user:{page.login.user.email}"

    def work() -> int | None:
        prev = st.store.set_prompt_label(project, name, label, n, at=datetime.now(UTC),
                                         updated_by=actor)  # fmt: skip
        st.store.add_audit(new_audit(project, actor, "prompt.label.set", name,
                                     {"label": label, "version": n,
                                      "previous_version": prev}))  # fmt: skip
        return prev

    try:
        prev = await run_in_threadpool(work)
    except SightlineError as e:
        if e.status >= 500:
            raise
        return await _detail_error(request, page, name, str(e), e.status)
    done = f"{label} now points at version {n}" + (f" (was {prev})" if prev else "")
    return RedirectResponse(page.url(f"/prompts/{name}", version=n, done=done), status_code=303)


@router.post("/prompts/{name}/labels/{label}/delete")
async def delete_label(
    request: Request,
    page: WebPage,
    name: str = _NAME,
    label: str = Path(max_length=200),
    csrf: str = Form("", max_length=100),
) -> Response:
    """Remove a label from the prompt."""
    check_csrf(page, csrf)
    st = state_of(request)
    project = await run_in_threadpool(_require_editor, st, page)
    actor = f"user:{page.login.user.email}"

    def work() -> int | None:
        prev = st.store.delete_prompt_label(project, name, label)
        if prev is not None:
            st.store.add_audit(new_audit(project, actor, "prompt.label.delete", name,
                                         {"label": label, "previous_version": prev}))  # fmt: skip
        return prev

    prev = await run_in_threadpool(work)
    if prev is None:
        return await _detail_error(request, page, name, f"prompt {name!r} has no label "
                                   f"{label!r}", 404)  # fmt: skip
    return RedirectResponse(
        page.url(f"/prompts/{name}", done=f"label {label} removed (it pointed at version {prev})"),
        status_code=303,
    )
