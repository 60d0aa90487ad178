"""The bot settings tabs: which fields each tab shows and how a submitted form becomes a PUT body.

Values are converted and checked here first (numbers, JSON) so a typo is shown at its field
without a round trip; everything else is the API's to validate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData


@dataclass(frozen=True)
class FormField:
    """One input of a settings tab."""

    name: str
    label: str
    type: str = "text"  # text | textarea | bool | int | float | json | lines | select | secret
    help: str = ""
    options: tuple[str, ...] = ()
    nullable: bool = False
    placeholder: str = ""
    rows: int = 4
    #: (value, what the owner reads) for a select's options; the value is kept as a tooltip
    option_labels: tuple[tuple[str, str], ...] = ()

    def option_label(self, value: str) -> str:
        """The plain-language name of a select option (a cloud provider by its id)."""
        found = dict(self.option_labels).get(value)
        if found:
            return found
        if value.startswith("cloud:"):
            return f"Cloud AI provider “{value[len('cloud:') :]}”"
        return value


COMMON_SETTINGS = [
    FormField("name", "Name"),
    FormField("enabled", "Enabled", "bool", help="A disabled bot cannot be started"),
    FormField("auto_start", "Start with the orchestrator", "bool"),
    FormField(
        "webhook_port", "Webhook port", "int", nullable=True, help="Blank: a free port is picked"
    ),
]

SECTIONS: dict[str, list[FormField]] = {
    "ai": [
        FormField(
            "llm_backend",
            "How the bot answers",
            "select",
            options=("extractive", "vllm", "gemini", "local"),
            option_labels=(
                ("extractive", "Answer from documents (offline)"),
                ("vllm", "Your own AI server"),
                ("gemini", "Google Gemini (cloud)"),
                ("local", "Small built-in AI model (offline)"),
            ),
            help="“Answer from documents” needs no internet: it replies with sentences from "
            "the bot's knowledge bases (link them in the Knowledge tab). The AI choices write "
            "their own answers; cloud providers are added by an administrator.",
        ),
        FormField(
            "system_prompt",
            "Instructions for the AI",
            "textarea",
            rows=6,
            help="How the bot should behave, e.g. “Answer briefly and politely. Never promise "
            "delivery dates.”",
        ),
        FormField(
            "persona",
            "Personality",
            "textarea",
            rows=3,
            help="The bot's tone of voice, e.g. “friendly and informal”",
        ),
        FormField(
            "llm_params",
            "Answer style (advanced)",
            "json",
            rows=5,
            help="How creative the AI may be: temperature from 0 (precise) to 2 (playful); "
            "max_tokens limits the length of an answer. Leave it as it is if unsure.",
        ),
        FormField(
            "llm_history",
            "Earlier messages the AI reads",
            "int",
            help="How many earlier messages of the conversation go with each question "
            "(0 to 50; 20 if unsure). More gives better context but slower, costlier answers.",
        ),
        FormField(
            "quote_replies",
            "Quote the customer's message when answering one of several",
            "bool",
            help="When a customer sends several messages before the bot answers, each answer "
            "shows the message it is for (WhatsApp and Telegram)",
        ),
        FormField(
            "fallback_text",
            "When the AI cannot answer",
            "textarea",
            rows=2,
            help="Sent when the AI fails or is unavailable",
        ),
    ],
    "tts": [
        FormField("tts_enabled", "Reply with a voice note too", "bool"),
        FormField(
            "tts_engine",
            "Voice engine",
            "select",
            options=("piper", "xtts", "openvoice"),
            option_labels=(
                ("piper", "Piper (built in, offline)"),
                ("xtts", "XTTS (voice server)"),
                ("openvoice", "OpenVoice (voice server)"),
            ),
        ),
        FormField(
            "tts_voice",
            "Voice",
            help="Blank: the default voice. Otherwise the name of a voice installed on the "
            "server (ask your administrator)",
        ),
    ],
    "access": [
        FormField(
            "allowed_phones",
            "Only these customers may write (one per line)",
            "lines",
            rows=6,
            help="Phone numbers with the country code, like +15551234567. Empty: everyone "
            "may write",
        ),
        FormField(
            "blocked_phones",
            "Never answer these customers (one per line)",
            "lines",
            rows=6,
            help="The same kinds of customer ids as above",
        ),
    ],
    "limits": [
        FormField(
            "rate_limit_count",
            "Messages",
            "int",
            help="How many typed messages a customer may send… (0: no limit; pressing the "
            "bot's buttons never counts)",
        ),
        FormField(
            "rate_limit_hours",
            "Per hours",
            "float",
            help="…in this many hours. New bots: 30 per hour; the strict preset (the seed "
            "bots' 5 per 5 hours) guards a public number against floods",
        ),
    ],
    "funnel": [
        FormField(
            "funnel",
            "Funnel (JSON)",
            "json",
            nullable=True,
            rows=28,
            help="Empty: the built-in default conversation flow",
        ),
    ],
}

#: Tabs of a bot page: (slug, label, is a settings form).
TABS: list[tuple[str, str, bool]] = [
    ("settings", "Settings", True),
    ("ai", "AI", True),
    ("tts", "Voice", True),
    ("access", "Access", True),
    ("limits", "Rate limiting", True),
    ("funnel", "Funnel", True),
    ("knowledge", "Knowledge", True),
    ("followups", "Follow-ups", False),
    ("handoff", "Handoff", False),
    ("logs", "Logs", False),
    ("conversations", "Conversations", False),
    ("chat", "Test chat", False),
]
TAB_NAMES = {slug for slug, _label, _form in TABS}


def fields_for(section: str, channel_fields: list[FormField] | None = None) -> list[FormField]:
    """The inputs of one settings tab; the Settings tab adds the channel's own fields (built
    from its manifest, see :meth:`admin_ui.channels.UiChannel.form_fields`)."""
    if section == "settings":
        return [*COMMON_SETTINGS, *(channel_fields or [])]
    return SECTIONS.get(section, [])


def display_value(f: FormField, value: Any) -> Any:
    """A stored value as its input shows it."""
    if f.type == "json":
        return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)
    if f.type == "lines":
        return "\n".join(value or [])
    if f.type == "bool":
        return bool(value)
    return "" if value is None else value


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"


def parse_form(
    fields: list[FormField], form: FormData
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Convert a submitted tab into a PUT body.

    Returns:
        ``(body, errors, echo)``: the body to send, errors by field, and the raw values to show
        again when the form is re-rendered with errors.
    """
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    echo: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.name)
        text = raw if isinstance(raw, str) else ""
        if f.type == "bool":
            body[f.name] = echo[f.name] = f.name in form
            continue
        echo[f.name] = text
        stripped = text.strip()
        if f.type in ("int", "float"):
            if not stripped:
                if f.nullable:
                    body[f.name] = None
                else:
                    errors[f.name] = "required"
                continue
            try:
                body[f.name] = int(stripped) if f.type == "int" else float(stripped)
            except ValueError:
                errors[f.name] = (
                    "must be a whole number" if f.type == "int" else "must be a number"
                )
        elif f.type == "json":
            if not stripped:
                if f.nullable:
                    body[f.name] = None
                else:
                    errors[f.name] = "required"
                continue
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                errors[f.name] = _json_error(exc)
                continue
            if not isinstance(value, dict):
                errors[f.name] = "must be a JSON object ({...})"
                continue
            body[f.name] = value
        elif f.type == "lines":
            body[f.name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif f.type == "secret":
            if stripped:  # blank or the echoed mask keep the stored secret
                body[f.name] = stripped
        else:
            body[f.name] = text
    return body, errors, echo

