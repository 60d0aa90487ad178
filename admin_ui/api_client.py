"""The admin UI talks to the admin API in-process, with the signed-in user's token.

Every read and write the UI makes goes through the same routes (and so the same RBAC checks and
validation) as a ``curl`` with a bearer token would; the UI only turns answers into HTML.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from orchestrator.api.deps import SESSION_COOKIE

logger = logging.getLogger(__name__)

INTERNAL_BASE = "http://flotilla.admin-ui"


@dataclass
class ApiResult:
    """One API answer: status, decoded JSON (or text) and the errors it names."""

    status: int
    data: Any = None
    text: str = ""
    field_errors: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300


def parse_errors(status: int, data: Any) -> tuple[dict[str, str], str]:
    """Turn an error answer into ``{field: message}`` and a message for the whole form.

    422 details name the field in ``loc`` (``["body", "funnel", "segments", 0]``); the field is
    the first item after ``body`` and the rest of the path is shown in the message.
    """
    fields: dict[str, str] = {}
    general = ""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):
        for err in detail:
            if not isinstance(err, dict):
                continue
            loc = [str(p) for p in err.get("loc", [])]
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]
            msg = str(err.get("msg", "invalid value"))
            if err.get("type") == "string_pattern_mismatch":
                # "String should match pattern '^v\d+\.\d+$'": no regex for the reader
                msg = "is not written the expected way; see the example in the help text"
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if loc:
                where = " → ".join(loc[1:])
                fields.setdefault(loc[0], f"{where}: {msg}" if where else msg)
            else:
                general = msg
    elif isinstance(detail, str):
        general = detail
    if not fields and not general:
        general = {
            401: "Your session has ended; sign in again.",
            403: "Your role may not do this.",
            404: "Not found, or not yours to see.",
            500: "The server failed; the details are in its log.",
            502: "A service behind the orchestrator did not answer.",
        }.get(status, f"Request failed ({status}).")
    return fields, general


class AdminApi:
    """An httpx client bound to this app over ASGI, authenticated as the request's user."""

    def __init__(self, request: Request, token: str | None = None) -> None:
        token = token if token is not None else request.cookies.get(SESSION_COOKIE, "")
        client = (request.client.host, request.client.port) if request.client else ("ui", 0)
        headers = {"X-Request-ID": request.headers.get("x-request-id", "")}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if not headers["X-Request-ID"]:
            headers.pop("X-Request-ID")
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=request.app, client=client),
            base_url=INTERNAL_BASE,
            headers=headers,
            timeout=30.0,
        )

    async def __aenter__(self) -> AdminApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> ApiResult:
        """Call the API; never raises for HTTP errors (they come back as :class:`ApiResult`)."""
        try:
            res = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError:
            logger.exception("admin API call failed", extra={"path": path})
            return ApiResult(500, message="The orchestrator did not answer.")
        data: Any = None
        if res.headers.get("content-type", "").startswith("application/json"):
            try:
                data = res.json()
            except ValueError:
                data = None
        result = ApiResult(res.status_code, data=data, text=res.text)
        if not result.ok:
            result.field_errors, result.message = parse_errors(res.status_code, data)
        return result

    async def get(self, path: str, **kwargs: Any) -> ApiResult:
        """GET ``path``."""
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ApiResult:
        """POST ``path``."""
        return await self.call("POST", path, **kwargs)
