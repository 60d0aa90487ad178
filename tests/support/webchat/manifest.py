"""The webchat test channel's manifest: registered on import (the plugin hook)."""

from __future__ import annotations

from shared.channels.registry import Capabilities, ChannelManifest, ConfigField, register

SIGNATURE_HEADER = "X-Webchat-Signature"

MANIFEST = register(
    ChannelManifest(
        kind="webchat",
        label="Web chat",
        module="tests.support.webchat",
        description="A chat box on your own website (test channel).",
        fields=(
            ConfigField(
                "webchat_secret",
                "str",
                "",
                secret=True,
                label="Widget secret",
                help="The shared secret your website's chat widget signs messages with.",
                required=True,
                max_length=256,
                sandbox_default="sandbox-{random}",
            ),
            ConfigField(
                "webchat_outbound_url",
                "url",
                "",
                label="Widget address",
                help="Where the bot posts its replies for the chat widget to show.",
                required=True,
                max_length=500,
            ),
            ConfigField(
                "webchat_greeting_delay",
                "int",
                0,
                label="Typing delay (seconds)",
                help="How long the widget shows 'typing…' before a reply.",
            ),
        ),
        identity_schemes=("webchat_visitor",),
        capabilities=Capabilities(max_buttons=None, max_text=2000),
        public_routes={"/webhook": ("POST",)},
        simulator="numbered",
        customer_id_scheme="webchat_visitor",
        public_headers=(SIGNATURE_HEADER,),
    )
)
