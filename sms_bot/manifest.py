"""The SMS channel (Twilio) as the rest of the fleet knows it (pure data; see
:mod:`shared.channels.registry`).

``PUBLIC_ROUTES``: the routes Twilio calls, the only ones ``/hooks/sms/{id}/...`` forwards
(path → methods; see ``sms_bot.webhook.make_routes``). ``max_text`` is
``sms_bot.render.BODY_MAX`` (a unit test keeps them equal).
"""

from __future__ import annotations

from shared.channels.registry import (
    Capabilities,
    ChannelManifest,
    ConfigField,
    SandboxPreview,
)

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("POST",),  # inbound messages
    "/status": ("POST",),  # delivery status callbacks
}

MANIFEST = ChannelManifest(
    kind="sms",
    label="SMS",
    module="sms_bot",
    description="Answer text messages sent to your phone number (through Twilio).",
    fields=(
        ConfigField(
            "account_sid",
            "str",
            "",
            label="Twilio Account SID",
            help="Your Twilio account's ID, starting with AC. It is on the front page of the "
            "Twilio Console.",
            required=True,
            max_length=64,
            sandbox_default="AC00000000000000000000000000000000",
        ),
        ConfigField(
            "auth_token",
            "str",
            "",
            secret=True,
            label="Twilio Auth Token",
            help="The password of your Twilio account, next to the Account SID in the "
            "Twilio Console. The bot uses it to send replies and to check that messages "
            "come from Twilio. Stored encrypted.",
            required=True,
            max_length=512,
            sandbox_default="sandbox-{random}",
        ),
        ConfigField(
            "from_number",
            "str",
            "",
            label="Your phone number",
            help="The Twilio number customers text, with the country code (+15551234567). "
            "Leave it empty if you use a Messaging Service instead.",
            max_length=32,
            sandbox_default="+15550000000",
        ),
        ConfigField(
            "messaging_service_sid",
            "str",
            "",
            label="Messaging Service SID",
            help="Optional: the ID of a Twilio Messaging Service (starting with MG) to send "
            "from a pool of numbers instead of one.",
            max_length=64,
        ),
        ConfigField(
            "twilio_base_url",
            "url",
            "https://api.twilio.com",
            label="Twilio API address",
            help="Where Twilio's API lives. Leave it as it is unless an administrator gave "
            "you another address (a proxy or the test sandbox).",
            max_length=500,
            sandbox_default="{sandbox_url}/twilio",
        ),
        ConfigField(
            "twilio_validate_signature",
            "bool",
            True,
            label="Check Twilio's signature",
            help="Refuse messages that are not signed by Twilio. Keep it on; turn it off "
            "only for a test set-up.",
        ),
    ),
    identity_schemes=("phone",),
    capabilities=Capabilities(
        voice_notes=False,
        customer_service_window=None,
        max_buttons=None,
        max_text=1600,
        messages_per_second=1.0,
    ),
    public_routes=PUBLIC_ROUTES,
    simulator="numbered",
    customer_id_scheme="phone",
    public_headers=(
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
        "i-twilio-idempotency-token",
    ),
    sandbox=SandboxPreview(
        provider="twilio",
        base_url_field="twilio_base_url",
        path="/twilio",
        address="e164",
        render="text",
    ),
)
