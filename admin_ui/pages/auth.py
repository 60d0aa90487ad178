"""Sign in and out (``/auth/token``, ``/auth/me``, ``/auth/logout``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin_ui.api_client import AdminApi
from admin_ui.common import current_ui_user, render
from orchestrator.api.deps import SESSION_COOKIE

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/", response_model=None)
async def home(request: Request) -> Response:
    """Signed in: the bots page; signed out: the login page."""
    await current_ui_user(request)
    return RedirectResponse("/bots", status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", error="", username="")


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Check the password through ``/auth/token`` and keep the token in an HttpOnly cookie."""
    form = await request.form()
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    async with AdminApi(request, token="") as api:
        res = await api.post("/auth/token", data={"username": username, "password": password})
    if not res.ok or not isinstance(res.data, dict):
        message = res.message if res.status in (401, 429) else "Enter a username and a password."
        response = render(request, "login.html", error=message, username=username)
        response.status_code = res.status if res.status in (401, 429) else 422
        return response
    redirect = RedirectResponse("/bots", status.HTTP_303_SEE_OTHER)
    redirect.set_cookie(
        SESSION_COOKIE,
        res.data["access_token"],
        max_age=int(res.data.get("expires_in") or 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    logger.info("signed in to the admin UI", extra={"username": username})
    return redirect


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Sign out: revoke the session's token (``POST /auth/logout``: every token of the user
    stops working, so a copied cookie is useless) and forget the cookie."""
    if request.cookies.get(SESSION_COOKIE):
        async with AdminApi(request) as api:
            await api.post("/auth/logout")
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
