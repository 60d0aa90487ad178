"""CSRF on a real orchestrator: a page on another port of the same host cannot make a signed-in
admin's browser change anything (the probe created an admin user that way); the UI's own pages
can, with the session's token; bearer-token API clients are unaffected."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.orchestrator_proc import ADMIN_PASSWORD, OrchestratorProcess

pytestmark = pytest.mark.slow

EVIL = "http://127.0.0.1:9999"


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    proc = OrchestratorProcess(
        tmp_path_factory.mktemp("csrf"), FLOTILLA_AUTO_START_BOTS="false"
    ).start()
    yield proc
    proc.close()


def sign_in(orch: OrchestratorProcess) -> str:
    """The session cookie the login form sets."""
    res = orch.http.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"Origin": orch.url},
    )
    assert res.status_code == 303, res.text
    cookie = res.cookies.get("flotilla_session")
    assert cookie
    orch.http.cookies.clear()
    return str(cookie)


def page_token(orch: OrchestratorProcess, cookie: str) -> str:
    """The CSRF token a signed-in page carries (meta tag and the sign-out form)."""
    html = orch.http.get("/users", headers={"Cookie": f"flotilla_session={cookie}"}).text
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    hidden = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert meta is not None
    assert hidden is not None
    assert meta.group(1) == hidden.group(1)
    return meta.group(1)


def usernames(orch: OrchestratorProcess) -> set[str]:
    return {u["username"] for u in orch.api("GET", "/admin/users").json()}


def new_admin_form() -> dict[str, str]:
    return {
        "username": "mallory" + secrets.token_hex(3),
        "password": secrets.token_urlsafe(18),
        "role": "admin",
    }


def post(orch: OrchestratorProcess, path: str, cookie: str, **kw: object) -> httpx.Response:
    headers = {"Cookie": f"flotilla_session={cookie}", **kw.pop("headers", {})}  # type: ignore[dict-item]
    return orch.http.post(path, headers=headers, **kw)  # type: ignore[arg-type]


def test_cross_origin_form_post_cannot_create_an_admin(orch: OrchestratorProcess) -> None:
    cookie = sign_in(orch)
    # What the probe's page on another port did: a form post riding on the session cookie.
    form = new_admin_form()
    res = post(orch, "/ui/users", cookie, data=form, headers={"Origin": EVIL})
    assert res.status_code == 403, res.text
    assert "CSRF" in res.json()["detail"]
    assert form["username"] not in usernames(orch)
    token = page_token(orch, cookie)
    # Even had it learnt the token, the origin gives it away.
    res = post(
        orch, "/ui/users", cookie, data=form, headers={"Origin": EVIL, "X-CSRF-Token": token}
    )
    assert res.status_code == 403
    # A Referer from elsewhere (no Origin) is refused the same way; so is Origin: null.
    res = post(orch, "/ui/users", cookie, data=form, headers={"Referer": f"{EVIL}/x"})
    assert res.status_code == 403
    res = post(orch, "/ui/users", cookie, data=form, headers={"Origin": "null"})
    assert res.status_code == 403
    # Same origin, but no token (or a wrong one): refused.
    res = post(orch, "/ui/users", cookie, data=form, headers={"Origin": orch.url})
    assert res.status_code == 403
    res = post(
        orch, "/ui/users", cookie, data=form, headers={"Origin": orch.url, "X-CSRF-Token": "x"}
    )
    assert res.status_code == 403
    assert form["username"] not in usernames(orch)
    # The UI itself: same origin, the page's token in the header htmx sends.
    res = post(
        orch, "/ui/users", cookie, data=form, headers={"Origin": orch.url, "X-CSRF-Token": token}
    )
    assert res.status_code == 200, res.text
    assert form["username"] in usernames(orch)


def test_the_api_refuses_cookie_writes_without_the_token(orch: OrchestratorProcess) -> None:
    cookie = sign_in(orch)
    token = page_token(orch, cookie)
    form = new_admin_form()
    res = post(orch, "/admin/users", cookie, json=form)
    assert res.status_code == 403, res.text
    res = post(orch, "/admin/users", cookie, json=form, headers={"Origin": EVIL})
    assert res.status_code == 403
    assert form["username"] not in usernames(orch)
    res = post(orch, "/admin/users", cookie, json=form, headers={"X-CSRF-Token": token})
    assert res.status_code == 201, res.text
    # Bearer tokens (scripts, CLI) need no CSRF token: a browser never adds that header itself.
    other = new_admin_form()
    res = orch.http.post("/admin/users", json=other, headers=orch.headers)
    assert res.status_code == 201, res.text
    # Reads with the cookie alone stay fine.
    ok = orch.http.get("/admin/users", headers={"Cookie": f"flotilla_session={cookie}"})
    assert ok.status_code == 200


def test_plain_forms_carry_the_token_in_a_field(orch: OrchestratorProcess) -> None:
    cookie = sign_in(orch)
    token = page_token(orch, cookie)
    # Sign-out from another origin, or without the field: refused.
    assert post(orch, "/logout", cookie, headers={"Origin": EVIL}).status_code == 403
    assert post(orch, "/logout", cookie, data={"x": "1"}).status_code == 403
    # The page's own sign-out form (hidden csrf_token field).
    res = post(orch, "/logout", cookie, data={"csrf_token": token}, headers={"Origin": orch.url})
    assert res.status_code == 303
    assert res.headers["location"] == "/login"


def test_login_from_another_origin_is_refused(orch: OrchestratorProcess) -> None:
    res = orch.http.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"Origin": EVIL},
    )
    assert res.status_code == 403
    assert "flotilla_session" not in res.cookies
