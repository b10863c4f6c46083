"""What the dashboard pages share: templates, the logged-in user, CSRF, the URL's filters."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from sightline.errors import ConfigError, SightlineError
from sightline.server._accounts import Accounts, LoggedIn
from sightline.server._errors import describe_validation_error
from sightline.server._params import parse_time

__all__ = [
    "PAGE_CSP",
    "SESSION_COOKIE",
    "Page",
    "PageRoute",
    "WebPage",
    "check_csrf",
    "install_web",
    "page_of",
    "render",
    "safe_next",
    "same_token",
]

_HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "sl_session"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
"""Pages run only the server's own script files: no inline script, no inline style."""

RANGES: dict[str, int] = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800,
                          "30d": 2592000}  # fmt: skip
NAV = (("overview", "/", "Overview"), ("traces", "/traces", "Traces"),
       ("quality", "/quality", "Quality"), ("alerts", "/alerts", "Alerts"),
       ("drift", "/drift", "Drift"), ("cost", "/cost", "Cost"),
       ("prompts", "/prompts", "Prompts"), ("settings", "/settings", "Settings"))  # fmt: skip


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _usd(v: float | None) -> str:
    """Money with at least two significant digits ($1,234.56, $0.0482, $0.000042).

    A call of a small model costs $0.000042, which four decimals showed as $0.0000; app.js's
    ``usd`` formats the charts' values alike.
    """
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1 or a == 0:
        return f"${v:,.2f}"
    if a >= 0.001:
        return f"${v:.4f}"
    return f"${v:.{min(12, 1 - math.floor(math.log10(a)))}f}"


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _when(v: datetime | None) -> str:
    return "–" if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


SCORE_READINGS = {
    "toxicity": "toxicity-free score: 1 = clean",
    "pii_leak": "1 = no personal data",
    "prompt_injection": "1 = no injection found",
}
"""How to read an evaluator's score whose name is a harm: its score is 1 when the harm is
absent (the Quality page's table), while the metric of the same name may count the harm."""
METRIC_READINGS = {"toxicity": "0 = clean", "hallucination_rate": "0 = none"}
"""How to read a score metric the pages show beside scores (Overview cards, Quality trends):
``toxicity`` is 1 − the evaluator's score."""


def _score_note(name: str | None) -> str:
    """The reading of a score name (``score:toxicity`` on a release page too), or ''."""
    return SCORE_READINGS.get((name or "").removeprefix("score:"), "")


def _metric_note(name: str | None) -> str:
    return METRIC_READINGS.get(name or "", "")


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
    autoescape=True,  # every value is escaped: prompts and responses are attacker-controlled
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _other_parts(message: Any) -> list[Any]:
    """A stored message's parts that are not its text: tool calls and results, images."""
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(parts, list):
        return []
    text = ("text", "input_text", "output_text")
    return [p for p in parts if not (isinstance(p, dict) and p.get("type", "text") in text)]


_ENV.filters.update(pretty=_pretty, ms=_ms, usd=_usd, num=_num, pct=_pct, when=_when,
                    other_parts=_other_parts)  # fmt: skip
_ENV.globals.update(score_note=_score_note, metric_note=_metric_note)


class LoginRequired(Exception):
    """Raised by :func:`page_of` when the request has no live session."""


class PageError(Exception):
    """A page-level 4xx, shown as an HTML page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PageRoute(APIRoute):
    """The route class of the dashboard's pages and forms: malformed input is an HTML page.

    FastAPI refuses a form, query or path field it cannot validate (missing, over-long, not
    matching its pattern) with RequestValidationError, and a body it cannot parse with a 400
    HTTPException; the API renders both as JSON, which a browser user posting a form would
    see raw. On a page they become a :class:`PageError` (400), the dashboard's error page.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                raise PageError(400, describe_validation_error(e)) from None
            except StarletteHTTPException as e:
                # a body that stopped arriving (408) or could not be held (503) keeps its answer
                if e.status_code != 400 or isinstance(e.__cause__, SightlineError):
                    raise
                raise PageError(400, f"this form could not be read: {e.detail}") from None

        return page_handler


@dataclass
class Page:
    """A dashboard request: who, which project, which time range."""

    request: Request
    accounts: Accounts
    login: LoggedIn
    project: str | None
    start: datetime
    end: datetime
    range: str

    def url(self, path: str, **params: Any) -> str:
        """``path`` with the current project and time range, and ``params`` (None drops one)."""
        q: dict[str, Any] = {"project": self.project}
        if self.range == "custom":
            q["from"] = self.request.query_params.get("from")
            q["to"] = self.request.query_params.get("to")
        else:
            q["range"] = self.range
        q.update(params)
        clean = {k: v for k, v in q.items() if v is not None and v != ""}
        return f"{path}?{urlencode(clean)}" if clean else path

    def here(self, **params: Any) -> str:
        """This page's URL with some query parameters changed (filters, cursor)."""
        q: dict[str, Any] = dict(self.request.query_params)
        q.update(params)
        clean = {k: v for k, v in q.items() if v is not None and v != ""}
        return f"{self.request.url.path}?{urlencode(clean)}"

    @property
    def csrf(self) -> str:
        """The session's CSRF token, for every form."""
        return self.login.session.csrf_token


def safe_next(value: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def page_of(request: Request) -> Page:
    """FastAPI dependency of every page: the logged-in user, the project and time range.

    Redirects to /login without a session; 404 for a project the user does not belong to.
    """
    request.state.page_t0 = time.perf_counter()
    request.state.page_cpu0 = time.process_time()
    accounts: Accounts = request.app.state.sightline_accounts
    token = request.cookies.get(SESSION_COOKIE)
    login = await run_in_threadpool(accounts.resolve, token)
    if login is None:
        raise LoginRequired
    q = request.query_params
    project = q.get("project") or (login.projects[0] if login.projects else None)
    if project is not None and project not in login.projects:
        # the same answer as for a project that does not exist: membership is not disclosed
        raise PageError(404, f"no project {project!r} among yours")
    rng = q.get("range") or "24h"
    if not (q.get("range") or q.get("from") or q.get("to")):
        rng = await _default_range(request, project)
    try:
        # A named range wins over from/to: the header's form sends both when someone leaves a
        # custom range (a chart point's bucket) for "1h"; range=custom keeps from/to.
        if (q.get("from") or q.get("to")) and q.get("range") in (None, "", "custom"):
            end = parse_time(q.get("to"), "to") or datetime.now(UTC)
            start = parse_time(q.get("from"), "from") or end - timedelta(hours=24)
            rng = "custom"
        else:
            if rng not in RANGES:
                raise ConfigError(f"range: expected one of {', '.join(RANGES)}")
            end = datetime.now(UTC)
            start = end - timedelta(seconds=RANGES[rng])
    except ConfigError as e:
        raise PageError(400, str(e)) from None
    if start >= end:
        raise PageError(400, "from must be before to")
    return Page(request, accounts, login, project, start, end, rng)


# A named range shorter than a day, for a project whose first span is younger (a fresh `make
# demo`): its minutes of data over 24 hours draw one point at each chart's right edge.
_YOUNG_RANGES = ("15m", "1h", "6h")
# How long a young project's first span time is reused: a span sent late with an older start
# (a client's retry queue, a backfill) widens the default range within this.
_FIRST_SPAN_TTL_S = 30.0


async def _default_range(request: Request, project: str | None) -> str:
    """The range of a page asked for without one: 24h, or the shortest covering all the data."""
    if project is None:
        return "24h"
    cache: dict[str, tuple[datetime | None, float]] | None = getattr(
        request.app.state, "sightline_first_span", None
    )
    if cache is None:
        cache = request.app.state.sightline_first_span = {}
    now = datetime.now(UTC)
    first, checked = cache.get(project, (None, -_FIRST_SPAN_TTL_S))
    old = first is not None and (now - first).total_seconds() > RANGES[_YOUNG_RANGES[-1]]
    if not old and time.monotonic() - checked >= _FIRST_SPAN_TTL_S:
        from sightline.server._state import state_of

        try:
            first = await run_in_threadpool(state_of(request).store.first_span_time, project)
        except SightlineError:
            return "24h"  # the store is down: the page says so itself
        # a project older than the young ranges stays so: asked once
        cache[project] = (first, time.monotonic())
    if first is None:
        return "24h"
    age = (now - first).total_seconds()
    return next((r for r in _YOUNG_RANGES if age <= RANGES[r]), "24h")


WebPage = Annotated[Page, Depends(page_of)]
"""A page route parameter: the logged-in user, project and range (login redirect otherwise)."""


def same_token(given: str | None, expected: str | None) -> bool:
    """A constant-time comparison of a token someone sent with ours; False when either is empty.

    Compared as UTF-8 bytes: :func:`secrets.compare_digest` raises TypeError on a ``str`` with
    a non-ASCII character, and what a form, a cookie or a URL path carries is anyone's text.
    """
    if not given or not expected:
        return False
    return secrets.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def check_csrf(page: Page, token: str | None) -> None:
    """403 unless a form sent back its session's CSRF token."""
    if not same_token(token, page.csrf):
        raise PageError(403, "this form expired or did not come from this site: reload the page")


def _headers() -> dict[str, str]:
    return {"content-security-policy": PAGE_CSP, "cache-control": "no-store"}


def render(
    request: Request, template: str, *, page: Page | None = None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    """Render a template (autoescaped) with the page's CSP."""
    html = _ENV.get_template(template).render(
        request=request, page=page, nav=NAV, ranges=RANGES, **ctx
    )
    headers = _headers()
    t0 = getattr(request.state, "page_t0", None)
    if t0 is not None:
        # the page's own time (session, queries, template), for bench/pages.py and dev tools;
        # cpu: the server process's CPU meanwhile (DuckDB's threads included), which a busy
        # machine inflates far less than the wall time
        cpu = (time.process_time() - request.state.page_cpu0) * 1000
        headers["server-timing"] = (
            f"page;dur={(time.perf_counter() - t0) * 1000:.1f}, cpu;dur={cpu:.1f}"
        )
    return HTMLResponse(html, status_code=status, headers=headers)


def _page_of_form(app: FastAPI, action: str) -> str:
    """The page a form posting to ``action`` is on: the nearest path up it that answers GET.

    ``/settings/keys/{id}/revoke`` is on ``/settings``, ``/prompts/{name}/labels`` on
    ``/prompts/{name}``, ``/logout`` on ``/``.
    """
    parts = action.rstrip("/").split("/")
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[:n]) or "/"
        scope = {"type": "http", "path": candidate, "root_path": "", "method": "GET"}
        if any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
            return candidate
    return "/"


def install_web(app: FastAPI) -> None:
    """Static files and the pages' error handlers."""
    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        # After logging in the browser GETs `next`: for a form sent with an expired session,
        # that is the page the form is on (a GET of the form's action would be a 405).
        path = request.url.path
        if request.method not in ("GET", "HEAD"):
            path = _page_of_form(app, path)
        nxt = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            "/login?" + urlencode({"next": nxt}), status_code=303, headers=_headers()
        )

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        back = None
        if request.method not in ("GET", "HEAD"):
            # the page the form is on, to try again
            back = _page_of_form(app, request.url.path)
            if request.url.query:
                back += f"?{request.url.query}"
        return render(request, "error.html", status=exc.status, message=str(exc), back=back)
