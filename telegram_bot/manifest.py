"""The Telegram channel as the rest of the fleet knows it (pure data; see
:mod:`shared.channels.registry`).

``PUBLIC_ROUTES``: the routes Telegram calls, the only ones ``/hooks/telegram/{id}/...``
forwards (path → methods; see ``telegram_bot.webhook.make_routes``). ``max_text`` is
``telegram_bot.render.TEXT_MAX`` (a unit test keeps them equal).
"""

from __future__ import annotations

from shared.channels.registry import (
    Capabilities,
    ChannelManifest,
    ConfigField,
    SandboxPreview,
)

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("POST",),  # updates
}

MANIFEST = ChannelManifest(
    kind="telegram",
    label="Telegram",
    module="telegram_bot",
    description="Answer customers who message your Telegram bot.",
    fields=(
        ConfigField(
            "bot_token",
            "str",
            "",
            secret=True,
            label="Bot token",
            help="The token @BotFather gave you when you created the bot, like "
            "123456:ABC-DEF…. Stored encrypted.",
            required=True,
            max_length=512,
            sandbox_default="123456:sandbox-{random}",
        ),
        ConfigField(
            "webhook_secret",
            "str",
            "",
            secret=True,
            label="Webhook secret",
            help="Optional: any phrase of letters, digits, _ and -. Telegram sends it with "
            "every update so the bot knows the message really comes from Telegram.",
            max_length=256,
            sandbox_default="sandbox-{random}",
        ),
        ConfigField(
            "telegram_api_base_url",
            "url",
            "https://api.telegram.org",
            label="Bot API address",
            help="Where Telegram's Bot API lives. Leave it as it is unless an administrator "
            "gave you another address (a proxy or the test sandbox).",
            max_length=500,
            sandbox_default="{sandbox_url}/telegram",
        ),
        ConfigField(
            "telegram_set_webhook",
            "bool",
            True,
            label="Register the webhook at start",
            help="Tell Telegram where to send messages each time the bot starts (needs the "
            "public address). Turn it off if you register the webhook yourself.",
        ),
    ),
    # "phone" only when the customer shares their contact (a Telegram "contact" message).
    identity_schemes=("telegram_user", "username", "phone"),
    capabilities=Capabilities(
        voice_notes=True,
        customer_service_window=None,
        max_buttons=100,
        max_text=4096,
        messages_per_second=30.0,
    ),
    public_routes=PUBLIC_ROUTES,
    simulator="inline",
    customer_id_scheme="telegram_user",
    public_headers=("x-telegram-bot-api-secret-token",),
    sandbox=SandboxPreview(
        provider="telegram",
        base_url_field="telegram_api_base_url",
        path="/telegram",
        address="raw",
        render="telegram",
    ),
)
