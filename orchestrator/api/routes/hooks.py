"""One public address for the whole fleet: ``/hooks/{kind}/{id}/{path}`` is forwarded byte for
byte (method, headers, body, query) to that bot's own port, so provider signatures still verify."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session

from orchestrator.models import BotInstance

router = APIRouter(tags=["hooks"])

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


@router.api_route(
    "/hooks/{kind}/{instance_id}/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
async def forward_hook(request: Request, kind: str, instance_id: str, path: str) -> Response:
    """Forward a provider's request to the bot; 404 for unknown bots, 503 when it is down."""
    with Session(request.app.state.engine) as session:
        instance = session.get(BotInstance, instance_id)
        port = instance.webhook_port if instance and instance.kind == kind else None
    if port is None:
        return Response("no such bot", status_code=status.HTTP_404_NOT_FOUND)
    if path.startswith("control"):
        return Response("the control API is not exposed", status_code=status.HTTP_404_NOT_FOUND)
    body = await request.body()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    url = f"http://{request.app.state.settings.bot_host}:{port}/{path}"
    sup = request.app.state.supervisor
    try:
        res = await sup.http.request(
            request.method,
            url,
            params=request.url.query or None,
            headers=headers,
            content=body,
            timeout=30.0,
        )
    except Exception:  # the bot is down or restarting: the provider retries later
        return Response("bot unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    out_headers = {k: v for k, v in res.headers.items() if k.lower() not in HOP_BY_HOP}
    out_headers.pop("content-encoding", None)
    return Response(content=res.content, status_code=res.status_code, headers=out_headers)
