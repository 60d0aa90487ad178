"""Users and their roles, admins only (``/admin/users``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.common import UiUser, UserDep, render

router = APIRouter(include_in_schema=False)

FRAGMENT = "_users_body.html"


async def _users_page(
    request: Request,
    user: UiUser,
    *,
    template: str = "users.html",
    errors: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    async with AdminApi(request) as api:
        res = await api.get("/admin/users")
    if res.status == 403:
        response = render(request, "forbidden.html", user=user, what="Users")
        response.status_code = 403
        return response
    users = res.data if res.ok and isinstance(res.data, list) else []
    extra.setdefault("new", {"username": "", "role": "user"})
    extra.setdefault("notice", "")
    extra.setdefault("row_errors", {})
    return render(request, template, user=user, users=users, errors=errors or {}, **extra)


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, user: UserDep) -> HTMLResponse:
    """Users and their roles (admins only)."""
    return await _users_page(request, user)


@router.post("/ui/users", response_class=HTMLResponse)
async def create_user(request: Request, user: UserDep) -> HTMLResponse:
    """Create a user; errors next to their fields."""
    form = await request.form()
    body = {
        "username": str(form.get("username") or "").strip(),
        "password": str(form.get("password") or ""),
        "role": str(form.get("role") or "user"),
    }
    async with AdminApi(request) as api:
        res = await api.post("/admin/users", json=body)
    if res.ok:
        return await _users_page(
            request, user, template=FRAGMENT, notice=f"Created {body['username']}."
        )
    errors = res.field_errors or {"username": res.message}
    return await _users_page(request, user, template=FRAGMENT, errors=errors, new=body)


@router.post("/ui/users/{user_id}", response_class=HTMLResponse)
async def update_user(request: Request, user: UserDep, user_id: int) -> HTMLResponse:
    """Change a user's role or enable/disable them."""
    form = await request.form()
    body: dict[str, Any] = {}
    if form.get("role"):
        body["role"] = str(form.get("role"))
    if form.get("active") in ("true", "false"):
        body["active"] = form.get("active") == "true"
    if "password" in form:
        body["password"] = str(form.get("password") or "")
        if not body["password"]:
            return await _users_page(
                request, user, template=FRAGMENT, row_errors={user_id: "Type a new password."}
            )
    async with AdminApi(request) as api:
        res = await api.call("PATCH", f"/admin/users/{user_id}", json=body)
    if res.ok and isinstance(res.data, dict):
        if "password" in body:
            changed = "new password set; they are signed out everywhere"
        elif "role" in body:
            changed = f"role {res.data['role']}"
        else:
            changed = "enabled" if res.data["active"] else "disabled"
        notice = f"{res.data['username']}: {changed}."
        return await _users_page(request, user, template=FRAGMENT, notice=notice)
    return await _users_page(
        request,
        user,
        template=FRAGMENT,
        row_errors={user_id: _sentence(res.message or "; ".join(res.field_errors.values()))},
    )


def _sentence(text: str) -> str:
    """An API message as a sentence (``"password is…"`` → ``"Password is…"``)."""
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text
