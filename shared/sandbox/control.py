"""The sandbox's own inspection and control API, mounted under ``/_sandbox``."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from shared.sandbox import telegram_api
from shared.sandbox.common import STATE_KEY
from shared.sandbox.state import FAULT_MODES, PROVIDERS
from shared.sandbox.webhooks import GraphWebhook

logger = logging.getLogger(__name__)

PREFIX = "/_sandbox"
MAX_WAIT_S = 30.0
MAX_DELAY_S = 120.0


class ControlError(Exception):
    """A bad request to the control API."""


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _provider_param(value: str | None) -> str | None:
    if value in (None, "", "*", "all"):
        return None
    if value not in PROVIDERS:
        raise ControlError(f"provider must be one of {', '.join(PROVIDERS)}")
    return value


def _int_param(value: Any, name: str, *, default: int, minimum: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ControlError(f"{name} must be an integer") from exc
    if number < minimum:
        raise ControlError(f"{name} must be >= {minimum}")
    return number


def _float_param(value: Any, name: str, *, low: float, high: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ControlError(f"{name} must be a number") from exc
    if not low <= number <= high:
        raise ControlError(f"{name} must be between {low} and {high}")
    return number


async def health(request: web.Request) -> web.Response:
    """Liveness and a summary of what the sandbox holds."""
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            "status": "ok",
            "uptime_s": round(time.time() - state.started_at, 3),
            "requests": len(state.requests),
            "messages": len(state.messages),
            "faults": len(state.faults.rules),
        }
    )


async def list_requests(request: web.Request) -> web.Response:
    """Recorded provider requests, oldest first (``provider``, ``since``, ``limit``)."""
    try:
        provider = _provider_param(request.query.get("provider"))
        since = _int_param(request.query.get("since"), "since", default=0)
        limit = _int_param(request.query.get("limit"), "limit", default=0)
    except ControlError as exc:
        return _bad(str(exc))
    found = request.app[STATE_KEY].find_requests(
        provider=provider, since=since, limit=limit or None
    )
    return web.json_response({"requests": [r.to_dict() for r in found]})


async def reset_requests(request: web.Request) -> web.Response:
    """Forget recorded requests and accepted messages."""
    request.app[STATE_KEY].reset_log()
    return web.json_response({"ok": True})


async def list_messages(request: web.Request) -> web.Response:
    """Accepted outbound messages (``provider``, ``to``, ``since``, ``wait`` seconds)."""
    try:
        provider = _provider_param(request.query.get("provider"))
        since = _int_param(request.query.get("since"), "since", default=0)
        wait = _float_param(request.query.get("wait"), "wait", low=0.0, high=MAX_WAIT_S) or 0.0
    except ControlError as exc:
        return _bad(str(exc))
    found = await request.app[STATE_KEY].wait_for_messages(
        provider=provider, to=request.query.get("to") or None, since=since, wait_s=wait
    )
    return web.json_response({"messages": [m.to_dict() for m in found]})


async def list_faults(request: web.Request) -> web.Response:
    """The active fault rules."""
    rules = request.app[STATE_KEY].faults.rules
    return web.json_response({"faults": [r.to_dict() for r in rules]})


def _fault_kwargs(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ControlError("body must be a JSON object")
    mode = str(spec.get("mode", ""))
    if mode not in FAULT_MODES:
        raise ControlError(f"mode must be one of {', '.join(FAULT_MODES)}")
    count = spec.get("count")
    error_code = spec.get("error_code")
    delay = _float_param(spec.get("delay"), "delay", low=0.0, high=MAX_DELAY_S)
    error_message = spec.get("error_message")
    path_contains = spec.get("path_contains") or spec.get("method")
    return {
        "provider": _provider_param(spec.get("provider")),
        "mode": mode,
        "rate": _float_param(spec.get("rate"), "rate", low=0.0, high=1.0),
        "count": None if count is None else _int_param(count, "count", default=1, minimum=1),
        "retry_after": _int_param(spec.get("retry_after"), "retry_after", default=1),
        "delay": 0.5 if delay is None else delay,
        "error_code": None
        if error_code is None
        else _int_param(error_code, "error_code", default=0, minimum=1),
        "error_message": None if error_message is None else str(error_message),
        "path_contains": None if path_contains is None else str(path_contains),
    }


async def add_fault(request: web.Request) -> web.Response:
    """Add a fault rule; ``seed`` in the body reseeds the RNG used for ``rate``."""
    try:
        spec = await request.json()
    except ValueError:
        return _bad("body must be JSON")
    state = request.app[STATE_KEY]
    try:
        kwargs = _fault_kwargs(spec)
        if "seed" in spec:
            state.faults.seed(_int_param(spec["seed"], "seed", default=0))
    except ControlError as exc:
        return _bad(str(exc))
    rule = state.faults.add(**kwargs)
    logger.info("fault added: %s", rule)
    return web.json_response(rule.to_dict(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """Remove every fault rule (or only those of ``?provider=``)."""
    try:
        provider = _provider_param(request.query.get("provider"))
    except ControlError as exc:
        return _bad(str(exc))
    removed = request.app[STATE_KEY].faults.clear(provider)
    return web.json_response({"ok": True, "removed": removed})


async def reseed(request: web.Request) -> web.Response:
    """Reseed the fault RNG: ``{"seed": 42}``."""
    try:
        spec = await request.json()
        seed = _int_param(spec.get("seed"), "seed", default=0)
    except (ValueError, AttributeError, ControlError) as exc:
        return _bad(f'expected {{"seed": <int>}}: {exc}')
    request.app[STATE_KEY].faults.seed(seed)
    return web.json_response({"ok": True, "seed": seed})


async def reset_all(request: web.Request) -> web.Response:
    """Forget everything: requests, messages, faults, media, Telegram webhooks and updates."""
    request.app[STATE_KEY].reset_all()
    return web.json_response({"ok": True})


async def push_telegram_update(request: web.Request) -> web.Response:
    """Queue an update for a bot's ``getUpdates``: ``{"token": ..., "update": {...}}``."""
    try:
        spec = await request.json()
    except ValueError:
        return _bad("body must be JSON")
    if not isinstance(spec, dict) or not isinstance(spec.get("update"), dict):
        return _bad('expected {"token": <bot token>, "update": {...}}')
    token = str(spec.get("token") or "")
    if not telegram_api.TOKEN_RE.match(token):
        return _bad("token must look like <bot id>:<secret>")
    update = telegram_api.enqueue_update(request.app[STATE_KEY], token, spec["update"])
    return web.json_response(update, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    """Registered status webhooks (secrets masked) and delivery counters."""
    emitter = request.app[STATE_KEY].webhooks
    return web.json_response(
        {
            "webhooks": [hook.to_dict() for hook in emitter.graph.values()],
            "stats": {**asdict(emitter.stats), "pending": emitter.pending()},
        }
    )


async def register_webhook(request: web.Request) -> web.Response:
    """Send Graph status webhooks of one number to a URL:
    ``{"provider": "graph", "phone_number_id", "url", "app_secret", "waba_id"?}``."""
    try:
        spec = await request.json()
    except ValueError:
        return _bad("body must be JSON")
    if not isinstance(spec, dict) or spec.get("provider", "graph") != "graph":
        return _bad('expected {"provider": "graph", "phone_number_id", "url", "app_secret"}')
    missing = [k for k in ("phone_number_id", "url", "app_secret") if not spec.get(k)]
    if missing:
        return _bad(f"missing {', '.join(missing)}")
    url = str(spec["url"])
    if not url.startswith(("http://", "https://")):
        return _bad("url must be http(s)")
    hook = GraphWebhook(
        phone_number_id=str(spec["phone_number_id"]),
        url=url,
        app_secret=str(spec["app_secret"]),
        waba_id=str(spec.get("waba_id") or ""),
    )
    request.app[STATE_KEY].webhooks.register_graph(hook)
    logger.info("status webhook registered for %s", hook.phone_number_id)
    return web.json_response(hook.to_dict(), status=201)


async def clear_webhooks(request: web.Request) -> web.Response:
    """Forget every status webhook registration (and deliveries not made yet)."""
    removed = request.app[STATE_KEY].webhooks.clear()
    return web.json_response({"ok": True, "removed": removed})


async def get_media(request: web.Request) -> web.Response:
    """The bytes of a kept media object (a Graph upload or a Telegram ``sendVoice`` file), by
    its id: what the admin UI's test chat plays."""
    item = request.app[STATE_KEY].media.get(request.match_info["media_id"])
    if item is None:
        return web.json_response({"error": "no such media"}, status=404)
    return web.Response(body=item.data, content_type=item.mime_type or "application/octet-stream")


def add_routes(app: web.Application) -> None:
    """Mount the control API under ``/_sandbox``."""
    router = app.router
    router.add_get(PREFIX + "/health", health)
    router.add_get(PREFIX + "/media/{media_id}", get_media)
    router.add_get(PREFIX + "/requests", list_requests)
    router.add_delete(PREFIX + "/requests", reset_requests)
    router.add_get(PREFIX + "/messages", list_messages)
    router.add_delete(PREFIX + "/messages", reset_requests)
    router.add_get(PREFIX + "/faults", list_faults)
    router.add_post(PREFIX + "/faults", add_fault)
    router.add_delete(PREFIX + "/faults", clear_faults)
    router.add_post(PREFIX + "/seed", reseed)
    router.add_post(PREFIX + "/reset", reset_all)
    router.add_post(PREFIX + "/telegram/updates", push_telegram_update)
    router.add_get(PREFIX + "/webhooks", list_webhooks)
    router.add_post(PREFIX + "/webhooks", register_webhook)
    router.add_delete(PREFIX + "/webhooks", clear_webhooks)
