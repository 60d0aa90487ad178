"""CSRF defence for everything a browser's session cookie can authenticate.

A request that changes state (any method but GET, HEAD, OPTIONS, TRACE) and is authenticated
by the session cookie — no ``Authorization`` header — must pass two checks, on the admin UI
and on the API alike:

* **Origin**: its ``Origin`` header (else the origin of its ``Referer``), when the browser sent
  one, is the orchestrator's own: the origin the request was sent to (scheme and ``Host``) or
  the origin of ``FLOTILLA_PUBLIC_URL``. ``Origin: null`` is refused.
* **Token**: it carries the session's CSRF token (:func:`orchestrator.security.csrf_token`, an
  HMAC of the session cookie) in the ``X-CSRF-Token`` header (htmx sends it, see
  ``admin_ui/static/app.js``) or, for a plain form post, in a ``csrf_token`` form field.

``POST /login`` (no session yet) gets the Origin check. Bearer-token requests (scripts, the
admin UI's own in-process API calls) are not affected: a browser never adds that header to a
cross-site request by itself.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.deps import SESSION_COOKIE
from orchestrator.security import csrf_token
from orchestrator.settings import Settings

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPE = "application/x-www-form-urlencoded"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case; ``""`` when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(settings: Settings, scope: Scope, headers: Headers) -> set[str]:
    """The origins a state-changing browser request may come from."""
    origins = set()
    host = headers.get("host")
    if host:
        origins.add(f"{scope.get('scheme', 'http')}://{host}".lower())
    if settings.public_url:
        public = origin_of(settings.public_url)
        if public:
            origins.add(public)
    return origins


def session_csrf_token(settings: Settings, cookies: dict[str, str]) -> str:
    """The CSRF token for the session cookie in ``cookies`` (``""`` when signed out)."""
    session = cookies.get(SESSION_COOKIE, "")
    return csrf_token(settings.resolved_secret_key(), session) if session else ""


def _refuse(detail: str) -> JSONResponse:
    return JSONResponse({"detail": f"CSRF check failed: {detail}"}, status_code=403)


class CsrfMiddleware:
    """Pure ASGI: the Origin and token checks for cookie-authenticated writes (see module doc)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookies = cookie_parser(headers.get("cookie", ""))
        by_cookie = bool(cookies.get(SESSION_COOKIE)) and "authorization" not in headers
        is_login = scope["path"].rstrip("/") == "/login"
        if not (by_cookie or is_login):
            await self.app(scope, receive, send)
            return
        problem = self._origin_problem(scope, headers)
        if problem:
            await _refuse(problem)(scope, receive, send)
            return
        if not by_cookie:
            await self.app(scope, receive, send)
            return
        expected = session_csrf_token(self.settings, cookies)
        given = headers.get(CSRF_HEADER, "")
        if not given and headers.get("content-type", "").split(";")[0].strip() == _FORM_TYPE:
            body, receive = await _buffer(receive)
            values = parse_qs(body.decode("latin-1"), max_num_fields=1000)
            given = (values.get(CSRF_FIELD) or [""])[0]
        if not given:
            await _refuse("the CSRF token is missing")(scope, receive, send)
            return
        if not hmac.compare_digest(given.encode(), expected.encode()):
            await _refuse("the CSRF token is wrong (reload the page)")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _origin_problem(self, scope: Scope, headers: Headers) -> str:
        origin = headers.get("origin")
        if origin is None:
            referer = headers.get("referer")
            if not referer:
                return ""  # no browser hint at all: the token decides
            origin = origin_of(referer)
        origin = origin.strip().lower()
        if origin in own_origins(self.settings, scope, headers):
            return ""
        return f"the request came from another origin ({origin or 'none'})"


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (the body-limit middleware outside bounds it) and replay it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            out: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return out
        return await receive()

    return body, replay
