"""Your account: change your own password (``POST /auth/password``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, render
from orchestrator.api.deps import SESSION_COOKIE

router = APIRouter(include_in_schema=False)


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, user: UserDep, changed: int = 0) -> HTMLResponse:
    """The signed-in user's account: change the password."""
    notice = (
        "Password changed. Your other sessions have been signed out; this one stays signed in."
        if changed
        else ""
    )
    return render(request, "account.html", user=user, errors={}, form_error="", notice=notice)


@router.post("/ui/account/password", response_class=HTMLResponse)
async def change_password(request: Request, user: UserDep) -> Response:
    """Check the current password and set a new one; the API answers a fresh token (every
    older one is revoked), kept in the session cookie so this browser stays signed in. The
    page reloads, as the CSRF token belongs to the session cookie."""
    form = await request.form()
    current = str(form.get("current_password") or "")
    new = str(form.get("new_password") or "")
    repeat = str(form.get("repeat_password") or "")
    errors: dict[str, str] = {}  # field → message (the messages are not passwords)
    if not current:
        errors["current_password"] = "Type your current password."  # noqa: S105
    if not new:
        errors["new_password"] = "Type a new password."  # noqa: S105
    elif new != repeat:
        errors["repeat_password"] = "The two new passwords are not the same."  # noqa: S105
    form_error = ""
    if not errors:
        async with AdminApi(request) as api:
            res = await api.post(
                "/auth/password", json={"current_password": current, "new_password": new}
            )
        if res.ok and isinstance(res.data, dict):
            response = Response(status_code=200)
            response.headers["HX-Redirect"] = "/account?changed=1"
            response.set_cookie(
                SESSION_COOKIE,
                res.data["access_token"],
                max_age=int(res.data.get("expires_in") or 3600),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
            return response
        if res.status == 403:
            errors["current_password"] = "Your current password is not right."  # noqa: S105
        elif res.status == 422 and res.field_errors:
            errors = {k: _sentence(v) for k, v in res.field_errors.items()}
        else:
            form_error = _sentence(res.message)
    return render(
        request,
        "_account_form.html",
        user=user,
        errors=errors,
        form_error=form_error,
        notice="",
    )


def _sentence(text: str) -> str:
    """``"password is too easy…"`` → ``"Password is too easy…"``."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
