"""Where providers reach a bot from the internet: its public base URL.

Twilio signs the exact URL it called, and Telegram and Twilio need an address to call back, so
channels that verify or register webhooks ask here instead of guessing from the request.

Resolution order:

1. the instance config's ``public_url``: the public base under which the bot's own routes are
   served (``{public_url}/webhook``, ``{public_url}/status``; a trailing ``/webhook`` is
   tolerated and dropped);
2. ``BOT_PUBLIC_URL`` or ``FLOTILLA_PUBLIC_URL`` from the environment: the orchestrator's public
   address, whose ingress forwards ``/hooks/{kind}/{id}/{path}`` to the bot byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

WEBHOOK_SUFFIX = "/webhook"


def public_base_url(
    config: Mapping[str, Any],
    *,
    kind: str,
    instance_id: str,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Return the public base URL of the bot's routes, or ``None`` when nothing says.

    Args:
        config: the instance config (``public_url`` is read).
        kind: ``whatsapp``, ``sms`` or ``telegram`` (for the ingress path).
        instance_id: the bot's id (for the ingress path).
        env: environment to read (default ``os.environ``).

    Returns:
        A URL without a trailing slash, e.g. ``https://bots.example.com/hooks/sms/shop``.
    """
    own = str(config.get("public_url") or "").strip().rstrip("/")
    if own:
        if own.endswith(WEBHOOK_SUFFIX):
            own = own[: -len(WEBHOOK_SUFFIX)]
        return own
    source = os.environ if env is None else env
    fleet = (source.get("BOT_PUBLIC_URL") or source.get("FLOTILLA_PUBLIC_URL") or "").strip()
    if fleet and instance_id:
        return f"{fleet.rstrip('/')}/hooks/{kind}/{instance_id}"
    return None


def public_url_for(
    config: Mapping[str, Any],
    path: str,
    *,
    kind: str,
    instance_id: str,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Return the public URL of one of the bot's routes (``path``: ``/status``), or ``None``."""
    base = public_base_url(config, kind=kind, instance_id=instance_id, env=env)
    if base is None:
        return None
    return f"{base}/{path.lstrip('/')}"
