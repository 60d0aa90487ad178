"""What the orchestrator needs to know about a WhatsApp bot without importing it (pure data).

``PUBLIC_ROUTES``: the routes Meta calls, the only ones ``/hooks/whatsapp/{id}/...`` forwards
(path → methods; see ``whatsapp_bot.webhook.make_routes``).
"""

from __future__ import annotations

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("GET", "POST"),  # GET: the subscription challenge; POST: messages, statuses
}
