"""What the orchestrator needs to know about a Telegram bot without importing it (pure data).

``PUBLIC_ROUTES``: the routes Telegram calls, the only ones ``/hooks/telegram/{id}/...``
forwards (path → methods; see ``telegram_bot.webhook.make_routes``).
"""

from __future__ import annotations

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("POST",),  # updates
}
