"""/docs (Swagger UI) and /redoc with their scripts served by this server, not a CDN.

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net, a favicon from
fastapi.tiangolo.com and ReDoc's fonts from Google: on a machine without internet (where
Sightline often runs) they stayed blank. The ``fastapi-offline`` package (MIT) ships those
files (Swagger UI 5, which renders the OpenAPI 3.1 that FastAPI writes, and ReDoc); they are
mounted at :data:`ASSETS`. Swagger UI's validator badge (an image from validator.swagger.io) is
turned off.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

__all__ = ["ASSETS", "install_api_docs"]

ASSETS = "/docs-assets"
"""Where Swagger UI's and ReDoc's files are served."""
_FAVICON = "/static/favicon.svg"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc (the app is made with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_url}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_FAVICON}",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(oauth2_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{_FAVICON}",
            with_google_fonts=False,
        )
