"""Security headers on every response of the orchestrator (API, admin UI, static files).

* ``Content-Security-Policy``: scripts only from the orchestrator itself, never inline (the UI's
  behaviour is in ``admin_ui/static/app.js``; htmx attributes carry no code). Inline *style*
  is allowed (``style-src 'self' 'unsafe-inline'``): templates use ``style`` attributes and
  htmx adds its indicator styles; styles cannot run code. ``frame-ancestors 'none'``.
* ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``, ``Cross-Origin-Opener-Policy: same-origin``.

``/docs`` and ``/redoc`` (Swagger UI and ReDoc, served from locally installed assets by
:mod:`orchestrator.api.docs`) get the same policy plus ``worker-src 'self' blob:`` (ReDoc's search
worker); Swagger UI's inline start-up script runs under a per-response nonce the page sets
itself (:func:`docs_csp`). No foreign host anywhere.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def docs_csp(nonce: str) -> str:
    """:data:`DOCS_CSP` letting the inline scripts that carry ``nonce`` run (and no others)."""
    return DOCS_CSP.replace("script-src 'self';", f"script-src 'self' 'nonce-{nonce}';", 1)


COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Pure ASGI: adds the headers above to every HTTP response that does not set them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope["path"] in DOCS_PATHS else UI_CSP).encode()
        extra = ((b"content-security-policy", csp), *COMMON)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
