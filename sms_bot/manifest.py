"""What the orchestrator needs to know about an SMS bot without importing it (pure data).

``PUBLIC_ROUTES``: the routes Twilio calls, the only ones ``/hooks/sms/{id}/...`` forwards
(path → methods; see ``sms_bot.webhook.make_routes``).
"""

from __future__ import annotations

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("POST",),  # inbound messages
    "/status": ("POST",),  # delivery status callbacks
}
