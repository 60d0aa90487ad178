"""The WhatsApp channel as the rest of the fleet knows it (pure data; see
:mod:`shared.channels.registry`).

``PUBLIC_ROUTES``: the routes Meta calls, the only ones ``/hooks/whatsapp/{id}/...`` forwards
(path → methods; see ``whatsapp_bot.webhook.make_routes``). The capabilities' numbers are
``whatsapp_bot.render``'s limits (a unit test keeps them equal).
"""

from __future__ import annotations

from datetime import timedelta

from shared.channels.registry import (
    Capabilities,
    ChannelManifest,
    ConfigField,
    SandboxPreview,
)

PUBLIC_ROUTES: dict[str, tuple[str, ...]] = {
    "/webhook": ("GET", "POST"),  # GET: the subscription challenge; POST: messages, statuses
}

MANIFEST = ChannelManifest(
    kind="whatsapp",
    label="WhatsApp",
    module="whatsapp_bot",
    description="Answer customers on your WhatsApp Business number (Meta's WhatsApp Cloud API).",
    fields=(
        ConfigField(
            "phone_number_id",
            "str",
            "",
            label="Phone number ID",
            help="The ID of your WhatsApp business phone number (not the number itself). "
            "Find it in Meta's App Dashboard under WhatsApp → API Setup.",
            required=True,
            max_length=64,
            sandbox_default="1{random_digits}",
        ),
        ConfigField(
            "waba_id",
            "str",
            "",
            label="WhatsApp Business Account ID",
            help="The ID of your WhatsApp Business Account, shown next to the phone number ID "
            "in Meta's App Dashboard. Needed to manage message templates.",
            max_length=64,
        ),
        ConfigField(
            "access_token",
            "str",
            "",
            secret=True,
            label="Access token",
            help="A permanent token of a Meta system user with WhatsApp messaging permission. "
            "The bot uses it to send your replies. Stored encrypted.",
            required=True,
            max_length=4096,
            sandbox_default="sandbox-{random}",
        ),
        ConfigField(
            "verify_token",
            "str",
            "",
            secret=True,
            label="Webhook verify token",
            help="Any phrase you choose. Type the same phrase in Meta's webhook settings so "
            "Meta can confirm the webhook address is yours.",
            max_length=512,
            sandbox_default="sandbox-{random}",
        ),
        ConfigField(
            "app_secret",
            "str",
            "",
            secret=True,
            label="App secret",
            help="Your Meta app's secret (App Dashboard → App settings → Basic). The bot "
            "uses it to check that incoming messages really come from Meta.",
            max_length=512,
            sandbox_default="sandbox-{random}",
        ),
        ConfigField(
            "graph_api_base_url",
            "url",
            "https://graph.facebook.com",
            label="Graph API address",
            help="Where Meta's API lives. Leave it as it is unless an administrator gave you "
            "another address (a proxy or the test sandbox).",
            max_length=500,
            sandbox_default="{sandbox_url}/graph",
        ),
        ConfigField(
            "graph_api_version",
            "str",
            "v21.0",
            label="Graph API version",
            help="The version of Meta's API to use, like v21.0. Leave it unless Meta asks you "
            "to upgrade.",
            max_length=16,
        ),
        ConfigField(
            "wa_template_name",
            "str",
            "",
            label="Re-engagement template",
            help="The name of an approved message template. WhatsApp only lets a business "
            "write first, or more than 24 hours after the customer's last message, with one.",
            max_length=512,
        ),
        ConfigField(
            "wa_template_language",
            "str",
            "en_US",
            label="Template language",
            help="The language code the template was approved in, like en_US or de_DE.",
            max_length=16,
        ),
        ConfigField(
            "wa_template_params",
            "text",
            "",
            label="Template parameters",
            help="One value per line for the template's {{1}}, {{2}}, … in order. {name} is "
            "replaced by the customer's name and {text} by the message the bot wanted to send "
            "(a reminder's text). Empty: the template has no parameters.",
            max_length=2000,
        ),
    ),
    identity_schemes=("phone", "bsuid", "parent_bsuid", "username"),
    capabilities=Capabilities(
        voice_notes=True,
        templates=True,
        customer_service_window=timedelta(hours=24),
        max_buttons=3,
        lists=True,
        max_text=4096,
        messages_per_second=80.0,
    ),
    public_routes=PUBLIC_ROUTES,
    simulator="buttons",
    customer_id_scheme="phone",
    db_filename="wa_sales_{id}.db",  # seed 004's name
    public_headers=("x-hub-signature", "x-hub-signature-256"),
    sandbox=SandboxPreview(
        provider="graph",
        base_url_field="graph_api_base_url",
        path="/graph",
        address="digits",
        render="graph",
    ),
)
