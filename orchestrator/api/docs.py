"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from locally installed assets, no CDN.

The scripts and styles are the ones the ``fastapi-offline`` package ships (Swagger UI's bundle
and stylesheet, ReDoc's standalone bundle), served under ``/docs-assets``; the pages are built
with FastAPI's own ``get_swagger_ui_html`` / ``get_redoc_html`` pointed at them, so the docs work
on a machine with no internet access.

Swagger UI starts with a small inline script (FastAPI's). It runs under a per-response nonce: the
page's ``Content-Security-Policy`` is :data:`orchestrator.api.headers.DOCS_CSP` plus
``'nonce-…'`` in ``script-src`` — no ``'unsafe-inline'``, no foreign host.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from orchestrator.api.headers import docs_csp

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def with_nonce(page: HTMLResponse) -> HTMLResponse:
    """The same page with a nonce on each inline ``<script>`` and a CSP that allows only those."""
    nonce = secrets.token_urlsafe(18)
    html = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
    return HTMLResponse(html, headers={"Content-Security-Policy": docs_csp(nonce)})


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add the ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` pages
    (the app must be built with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_nonce(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=OAUTH2_REDIRECT_URL,
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                # No call to validator.swagger.io.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return with_nonce(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_nonce(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
