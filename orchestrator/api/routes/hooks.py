"""One public address for the whole fleet: ``/hooks/{kind}/{id}/{path}`` is forwarded to that
bot's own port, body and query byte for byte, so provider signatures still verify.

This is the internet's way in (docs/security.md), so it forwards as little as it can:

* only to a registered bot's port from the store, and only if that port is in the bot port range
  (a row edited by hand to point elsewhere is not followed);
* only the channel's public routes (its manifest's ``public_routes`` in the channel registry,
  ``shared.channels.registry``; plugin channels too), matched on the normalised path:
  percent-decoded once, encoded slashes and backslashes refused, ``//`` collapsed, ``.``/``..``
  resolved; the bot then gets the declared route itself, never the caller's spelling of it.
  Anything else (``/control/...`` included) is 404;
* only the headers providers send (content type, user agent, the signature headers the
  channel's manifest names in ``public_headers``): never ``Cookie``, ``Authorization`` or
  ``X-Forwarded-*``; and no ``Set-Cookie`` back;
* at most ``hooks_max_body_bytes`` of body (413 beyond, counted while reading), and within
  ``hooks_timeout_s`` in all (504 beyond).
"""

from __future__ import annotations

import asyncio
import posixpath
import re
from collections.abc import Mapping
from urllib.parse import unquote

import httpx
from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session

from orchestrator.api.deps import SupervisorDep
from orchestrator.crud import InstanceRules
from orchestrator.models import BotInstance
from shared.channels import registry

router = APIRouter(tags=["hooks"])


def public_routes(kind: str) -> Mapping[str, tuple[str, ...]]:
    """The public path → methods of ``kind`` from its manifest (nothing for an unknown kind)."""
    return registry.get(kind).public_routes if registry.is_kind(kind) else {}


#: Request headers every provider's webhook may need; a channel adds its signature headers
#: (the manifest's ``public_headers``); everything else stays here.
FORWARD_REQUEST_HEADERS = frozenset({"content-type", "user-agent", "accept", "x-request-id"})


def forward_request_headers(kind: str) -> frozenset[str]:
    """:data:`FORWARD_REQUEST_HEADERS` and the signature headers of ``kind`` (lower case)."""
    extra = registry.get(kind).public_headers if registry.is_kind(kind) else ()
    return FORWARD_REQUEST_HEADERS | {h.lower() for h in extra}


#: Response headers the provider may see; never ``Set-Cookie`` or the bot's server details.
FORWARD_RESPONSE_HEADERS = frozenset({"content-type", "x-request-id", "retry-after"})

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class BodyTooLarge(Exception):
    """The caller sent more than the channel needs."""


def normalise_path(raw: str) -> str | None:
    """The absolute path ``raw`` (the part after ``/hooks/{kind}/{id}/``, still
    percent-encoded) names, or ``None`` when it cannot be read unambiguously.

    Decodes once; refuses encoded ``/`` or ``\\`` (``%2f``, ``%5c``), backslashes and control
    characters; collapses ``//``; resolves ``.`` and ``..`` (never above the root).
    """
    if "\\" in raw or _ENCODED_SEPARATOR.search(raw):
        return None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\\" in decoded or _CONTROL_CHARS.search(decoded):
        return None
    collapsed = re.sub(r"/+", "/", "/" + decoded)
    return posixpath.normpath(collapsed)


def public_route(kind: str, raw: str) -> str | None:
    """The declared public route of ``kind`` that ``raw`` names exactly, else ``None``."""
    routes = public_routes(kind)
    path = normalise_path(raw)
    return path if path is not None and path in routes else None


def raw_subpath(request: Request, kind: str, instance_id: str) -> str | None:
    """The request's path after ``/hooks/{kind}/{id}/`` as the client sent it (encoded), or
    ``None`` if the kind and id segments themselves were spelled oddly (``%2f`` in them)."""
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    text = text.split("?", 1)[0]
    parts = text.split("/", 4)
    if len(parts) < 5 or parts[0] or parts[1] != "hooks":
        return None
    if unquote(parts[2]) != kind or unquote(parts[3]) != instance_id:
        return None
    return parts[4]


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, read while counting: :class:`BodyTooLarge` past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _forward(
    http: httpx.AsyncClient,
    request: Request,
    url: str,
    limit: int,
    timeout: httpx.Timeout,
    allowed_headers: frozenset[str] = FORWARD_REQUEST_HEADERS,
) -> Response:
    body = await read_capped(request, limit)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() in allowed_headers]
    upstream = http.build_request(
        request.method, url, headers=headers, content=body, timeout=timeout
    )
    try:
        res = await http.send(upstream, stream=True)
    except httpx.HTTPError:  # the bot is down or restarting: the provider retries later
        return Response("bot unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    try:
        content = bytearray()
        async for chunk in res.aiter_bytes():
            content += chunk
            if len(content) > limit:
                return Response("bot answer too large", status_code=status.HTTP_502_BAD_GATEWAY)
    except httpx.HTTPError:
        return Response("bot unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    finally:
        await res.aclose()
    out = {k: v for k, v in res.headers.items() if k.lower() in FORWARD_RESPONSE_HEADERS}
    return Response(content=bytes(content), status_code=res.status_code, headers=out)


@router.api_route(
    "/hooks/{kind}/{instance_id}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
async def forward_hook(
    request: Request, sup: SupervisorDep, kind: str, instance_id: str, path: str
) -> Response:
    """Forward a provider's request to the bot's public route; 404 for unknown bots and routes,
    405 for a method the route does not take, 413 for a body over the limit, 503 when the bot
    is down, 504 when it takes too long."""
    settings = request.app.state.settings
    raw = raw_subpath(request, kind, instance_id)
    route = public_route(kind, raw) if raw is not None else None
    if route is None:
        return Response("no such public route", status_code=status.HTTP_404_NOT_FOUND)
    with Session(request.app.state.engine) as session:
        instance = session.get(BotInstance, instance_id)
        port = instance.webhook_port if instance and instance.kind == kind else None
    if port is None or not InstanceRules.from_settings(settings).port_in_range(port):
        return Response("no such bot", status_code=status.HTTP_404_NOT_FOUND)
    methods = public_routes(kind)[route]
    if request.method not in methods:
        return Response(
            "method not allowed",
            status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
            headers={"Allow": ", ".join(methods)},
        )
    query = request.scope.get("query_string", b"").decode("latin-1")
    # The bot's host: ``bot_host`` locally, its Service's DNS name in Kubernetes.
    host = sup.bot_host(kind, instance_id)
    url = f"http://{host}:{port}{route}" + (f"?{query}" if query else "")
    total = float(settings.hooks_timeout_s)
    timeout = httpx.Timeout(total, connect=float(settings.hooks_connect_timeout_s))
    try:
        async with asyncio.timeout(total):
            return await _forward(
                sup.http,
                request,
                url,
                int(settings.hooks_max_body_bytes),
                timeout,
                forward_request_headers(kind),
            )
    except BodyTooLarge:
        return Response(
            f"body over {settings.hooks_max_body_bytes} bytes",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    except TimeoutError:
        return Response("timed out", status_code=status.HTTP_504_GATEWAY_TIMEOUT)
