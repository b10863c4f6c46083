"""Dashboard login: /login, /logout and the first-run /setup link."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sightline.errors import ConfigError, TooManyRequests
from sightline.server._accounts import Accounts, SetupUsed
from sightline.server._security import new_audit
from sightline.server._state import state_of
from sightline.server._web import (
    SESSION_COOKIE,
    PageError,
    PageRoute,
    check_csrf,
    page_of,
    render,
    safe_next,
    same_token,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)

_LOGIN_CSRF = "sl_login_csrf"


def _accounts(request: Request) -> Accounts:
    acc: Accounts = request.app.state.sightline_accounts
    return acc


def _login_form(
    request: Request, *, error: str | None = None, status: int = 200, next: str | None = None
) -> Response:
    # Before a session exists, CSRF is a double-submit: a random cookie the form echoes.
    token = secrets.token_urlsafe(24)
    resp = render(
        request,
        "login.html",
        status=status,
        error=error,
        csrf=token,
        next=safe_next(next if next is not None else request.query_params.get("next")),
        setup=_accounts(request).setup_token is not None,
    )
    resp.set_cookie(_LOGIN_CSRF, token, httponly=True, samesite="strict", path="/login",
                    secure=request.url.scheme == "https")  # fmt: skip
    return resp


def _set_session(request: Request, resp: Response, token: str) -> None:
    days = state_of(request).settings.session_days
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/",
                    max_age=int(days * 86400), secure=request.url.scheme == "https")  # fmt: skip


@router.get("/login")
async def login_page(request: Request) -> Response:
    acc = _accounts(request)
    if await run_in_threadpool(acc.resolve, request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_form(request)


@router.post("/login")
async def login(
    request: Request,
    email: str = Form("", max_length=254),
    password: str = Form("", max_length=1024),
    csrf: str = Form("", max_length=100),
    next: str = Form("/", max_length=2000),
) -> Response:
    cookie = request.cookies.get(_LOGIN_CSRF)
    if not same_token(csrf, cookie):
        return _login_form(
            request, error="The form expired: please try again.", status=403, next=next
        )
    st = state_of(request)
    addr = request.client.host if request.client else "-"
    try:
        if st.security is not None:
            st.security.limiter.check(addr)
    except TooManyRequests as e:
        return _login_form(
            request, error=str(e).capitalize() + ": wait a little.", status=429, next=next
        )
    acc = _accounts(request)
    user = await run_in_threadpool(acc.authenticate, email, password)
    if user is None:
        if st.security is not None:
            st.security.limiter.fail(addr)
        return _login_form(request, error="Wrong email or password.", status=401, next=next)
    token, _ = await run_in_threadpool(acc.login, user)
    resp = RedirectResponse(safe_next(next), status_code=303)
    _set_session(request, resp, token)
    resp.delete_cookie(_LOGIN_CSRF, path="/login")
    return resp


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("", max_length=100)) -> Response:
    page = await page_of(request)
    check_csrf(page, csrf)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(_accounts(request).logout, token)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/setup/{token}")
async def setup_page(request: Request, token: str) -> Response:
    if not _accounts(request).setup_open(token):
        raise PageError(404, "this setup link is used or unknown")
    return render(request, "setup.html", token=token, error=None)


@router.post("/setup/{token}")
async def setup(
    request: Request,
    token: str,
    email: str = Form("", max_length=254),
    password: str = Form("", max_length=1024),
) -> Response:
    # The link's token is the secret: it was printed on the server's console only.
    acc = _accounts(request)
    if not acc.setup_open(token):
        raise PageError(404, "this setup link is used or unknown")
    try:
        # atomic: of concurrent claims one wins, the others get 404 (docs/security.md)
        user = await run_in_threadpool(acc.claim_setup, token, email, password)
    except SetupUsed as e:
        raise PageError(404, str(e)) from None
    except ConfigError as e:
        return render(request, "setup.html", status=400, token=token, error=str(e))
    st = state_of(request)
    await run_in_threadpool(
        st.store.add_audit, new_audit(None, f"user:{user.email}", "user.bootstrap", user.user_id)
    )
    session_token, _ = await run_in_threadpool(acc.login, user)
    resp = RedirectResponse("/settings", status_code=303)
    _set_session(request, resp, session_token)
    return resp
