"""Request limits: one body-size limit, enforced while reading; a token before a large body;
timeouts for slow bodies, slow headers and idle keep-alive connections.

Every request body is capped at ``FLOTILLA_MAX_BODY_BYTES`` (1 MiB). Only these routes take more:

* knowledge-base document uploads (API and UI, and the setup flow's documents together) —
  ``FLOTILLA_AI_MAX_UPLOAD_BYTES`` — and
  imports — ``FLOTILLA_AI_MAX_IMPORT_BYTES`` — plus a little room for the multipart framing.
  Before a byte of such a body is read, the request must carry the admin token (bearer or
  session cookie) of an active non-guest user, else 401/403;
* ``/hooks/...`` (providers' webhooks, no login) — ``FLOTILLA_HOOKS_MAX_BODY_BYTES`` (3 MiB);
* a bot's voice note to ``POST /internal/stt`` — 25 MiB, after its bot token is checked.

A ``Content-Length`` above the limit is answered 413 at once; a body without one (chunked) is
counted as it arrives and answered 413 as soon as it passes the limit. A body that stops
arriving for ``FLOTILLA_BODY_IDLE_TIMEOUT_S`` (or takes longer than
``FLOTILLA_BODY_TOTAL_TIMEOUT_S`` in all) is answered 408. Those answers close the connection,
so the rest of the body is never read.

:class:`GuardedH11Protocol` adds what uvicorn lacks: a deadline for a request's headers
(``FLOTILLA_HEADER_TIMEOUT_S``), so a client trickling header bytes cannot hold a connection.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.api.deps import SESSION_COOKIE, user_for_token
from orchestrator.internal.ai_routes import MAX_AUDIO_BYTES
from orchestrator.internal.routes import current_bot
from orchestrator.settings import Settings

#: Room for multipart boundaries, part headers and small form fields around an uploaded file.
MULTIPART_MARGIN = 64 * 1024
CLOSE = {"Connection": "close"}

_KB_UPLOAD = re.compile(r"^/admin/knowledge/[^/]+/documents/?$")
_UI_KB_UPLOAD = re.compile(r"^/ui/knowledge/[^/]+/upload/?$")
_UI_SETUP = re.compile(r"^/ui/setup/?$")  # the setup flow's documents, together
_KB_IMPORT = re.compile(r"^/admin/knowledge/import/?$")


class BodyTooLarge(HTTPException):
    """413: the body passed its route's limit (raised from ``receive``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body is larger than the {limit} byte limit", headers=dict(CLOSE)
        )


class BodyTimeout(HTTPException):
    """408: the body stopped arriving, or took too long in all."""

    def __init__(self, detail: str) -> None:
        super().__init__(408, detail, headers=dict(CLOSE))


@dataclass(frozen=True)
class BodyRule:
    """How much body a route may read, and whether a writer's token must come first."""

    limit: int
    needs_writer: bool = False
    needs_bot: bool = False


def body_rule(settings: Settings, method: str, path: str) -> BodyRule:
    """The rule for one request (by method and path, before routing)."""
    if method == "POST":
        if _KB_IMPORT.match(path):
            return BodyRule(settings.ai.max_import_bytes + MULTIPART_MARGIN, needs_writer=True)
        if _KB_UPLOAD.match(path) or _UI_KB_UPLOAD.match(path) or _UI_SETUP.match(path):
            return BodyRule(settings.ai.max_upload_bytes + MULTIPART_MARGIN, needs_writer=True)
        if path.rstrip("/") == "/internal/stt":
            return BodyRule(MAX_AUDIO_BYTES + MULTIPART_MARGIN, needs_bot=True)
    if path.startswith("/hooks/"):
        return BodyRule(settings.hooks_max_body_bytes)
    return BodyRule(settings.max_body_bytes)


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


class BodyLimitMiddleware:
    """Pure ASGI: the body limit, the token check before large bodies, the body timeouts."""

    def __init__(self, app: ASGIApp, settings: Settings, engine: Engine) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = body_rule(self.settings, scope["method"], scope["path"])
        if rule.needs_writer or rule.needs_bot:
            refusal = await self._caller_refusal(scope, bot=rule.needs_bot)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _error(400, "Content-Length is not a number", CLOSE)(scope, receive, send)
                return
            if declared > rule.limit:
                await _error(413, BodyTooLarge(rule.limit).detail, CLOSE)(scope, receive, send)
                return
        await self._run(scope, receive, send, rule.limit)

    async def _caller_refusal(self, scope: Scope, *, bot: bool) -> JSONResponse | None:
        """401/403 unless the request carries an active non-guest user's admin token (or, with
        ``bot``, the calling bot's current internal token)."""
        request = Request(scope)
        auth = request.headers.get("authorization", "")
        scheme, _, bearer = auth.partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else ""

        def lookup() -> tuple[str, Any]:
            with Session(self.engine) as session:
                try:
                    if bot:
                        creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
                        current_bot(session, self.settings, creds if token else None)
                        return "ok", "bot"
                    cookie = request.cookies.get(SESSION_COOKIE, "")
                    user = user_for_token(session, self.settings, token or cookie)
                except HTTPException as exc:
                    return "refused", exc
                return "ok", user.role

        outcome, value = await anyio.to_thread.run_sync(lookup)
        if outcome == "refused":
            return _error(value.status_code, str(value.detail), {**CLOSE, **(value.headers or {})})
        if value == "guest":
            return _error(403, "guests have read-only access", CLOSE)
        return None

    async def _run(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        idle = self.settings.body_idle_timeout_s
        deadline = time.monotonic() + self.settings.body_total_timeout_s
        received = 0
        body_done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # the body is in; later reads wait for a disconnect, unbounded
                return await receive()
            wait = min(idle, deadline - time.monotonic())
            if wait <= 0:
                raise BodyTimeout("the request body took too long")
            try:
                message = await asyncio.wait_for(receive(), wait)
            except TimeoutError:
                raise BodyTimeout(
                    f"no request body bytes for {wait:g} s"
                    if wait == idle
                    else "the request body took too long"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:
            if started:
                raise
            await _error(exc.status_code, str(exc.detail), CLOSE)(scope, receive, send)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a request whose headers arrive a byte
    at a time; this closes a connection whose next request has not fully arrived within
    ``header_timeout`` seconds of the connection opening or the previous response ending.
    """

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        handle = getattr(self, "_header_deadline", None)
        if handle is not None:
            handle.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        old = getattr(self, "_header_deadline", None)
        if old is not None:
            old.cancel()
        cycle = self.cycle
        self._header_deadline = self.loop.call_later(
            self.header_timeout, self._headers_too_slow, cycle
        )

    def _headers_too_slow(self, cycle: Any) -> None:
        # A new request began (its headers are complete) since arming, or one is still being
        # answered: not this deadline's business (the body timeouts cover a slow body).
        if self.cycle is not cycle or self.transport.is_closing():
            return
        if cycle is not None and not cycle.response_complete:
            return
        self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class with its header deadline set."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})
