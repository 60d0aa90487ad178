"""The channels as the admin API declares them (``GET /admin/channels``), in the UI's terms.

Everything the UI shows per kind of bot is derived from here: the add-bot list, the labels, the
channel's settings fields, the values that wire a new bot to the sandbox providers, and how the
test chat shows the bot's replies. A channel registered anywhere (a plugin under ``tests/`` too)
appears in the UI without a change to it.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, replace
from typing import Any

from admin_ui.forms import FormField

#: Channel field types (the registry's ``ConfigField.type``) → the input the form shows.
INPUT_TYPES = {"str": "text", "url": "text", "int": "int", "bool": "bool", "text": "textarea"}
#: How the test chat shows replies: tappable buttons and lists, a numbered text menu (nothing
#: to tap), or buttons under the message (inline keyboards).
SIMULATORS = ("buttons", "numbered", "inline")


#: Customer id schemes (a channel's ``identity_schemes``) as the access-list help names them.
PLAIN_IDS = {
    "phone": "phone numbers with the country code (+15551234567)",
    "bsuid": "WhatsApp user ids (US.1234567890)",
    "telegram_user": "Telegram user ids (numbers)",
    "username": "@usernames",
}
#: Schemes the help leaves out (the same kind of id as one it names).
HIDDEN_IDS = frozenset({"parent_bsuid"})


class KindLabels(dict[str, str]):
    """kind → label; an unknown kind (a bot whose plugin is not loaded) shows as itself."""

    def __missing__(self, key: str) -> str:
        return str(key)


@dataclass(frozen=True)
class UiChannel:
    """One kind of bot: its manifest from the API."""

    kind: str
    label: str
    fields: tuple[dict[str, Any], ...] = ()
    simulator: str = "numbered"
    customer_id_scheme: str = "phone"
    description: str = ""
    sandbox: bool = False
    identity_schemes: tuple[str, ...] = ()
    voice_notes: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> UiChannel:
        """Build from one item of ``GET /admin/channels``."""
        kind = str(data["kind"])
        simulator = str(data.get("simulator") or "numbered")
        return cls(
            kind=kind,
            label=str(data.get("label") or kind),
            fields=tuple(
                f for f in data.get("fields") or () if isinstance(f, dict) and f.get("name")
            ),
            simulator=simulator if simulator in SIMULATORS else "numbered",
            customer_id_scheme=str(data.get("customer_id_scheme") or "phone"),
            description=str(data.get("description") or ""),
            sandbox=bool(data.get("sandbox")),
            identity_schemes=tuple(str(x) for x in data.get("identity_schemes") or ()),
            voice_notes=bool((data.get("capabilities") or {}).get("voice_notes")),
        )

    def form_fields(self) -> list[FormField]:
        """The channel's inputs on the Settings tab, in the manifest's order."""
        out = []
        for f in self.fields:
            default = f.get("default")
            placeholder = str(default) if isinstance(default, str | int) and default != "" else ""
            out.append(
                FormField(
                    str(f["name"]),
                    str(f.get("label") or f["name"]),
                    "secret" if f.get("secret") else INPUT_TYPES.get(str(f.get("type")), "text"),
                    help=str(f.get("help") or ""),
                    nullable=f.get("type") == "int" and not f.get("required"),
                    placeholder=placeholder if not f.get("secret") else "",
                )
            )
        return out

    def explain(self, fields: list[FormField]) -> list[FormField]:
        """The common tabs' fields with help that depends on the channel: whether TTS replies
        go out as voice notes, and which customer ids the access lists take."""
        out = []
        for f in fields:
            if f.name == "tts_enabled":
                note = (
                    f"{self.label} gets the reply as a voice note too"
                    if self.voice_notes
                    else f"{self.label} cannot take voice notes: this bot sends the text only"
                )
                f = replace(f, help=note)
            elif f.name == "allowed_phones" and self.identity_schemes:
                ids = [
                    PLAIN_IDS.get(s, s.replace("_", " ") + " ids")
                    for s in self.identity_schemes
                    if s in PLAIN_IDS or s not in HIDDEN_IDS
                ]
                f = replace(
                    f,
                    help=f"{self.label} customers as {', '.join(ids)}. "
                    "Empty: everyone may write",
                )
            out.append(f)
        return out

    @property
    def secret_names(self) -> frozenset[str]:
        """Names of the fields the API masks."""
        return frozenset(str(f["name"]) for f in self.fields if f.get("secret"))

    def sandbox_values(self, sandbox_url: str) -> dict[str, str]:
        """Settings that make a new bot talk to the sandbox providers at ``sandbox_url``: each
        field's ``sandbox_default`` with ``{sandbox_url}``, ``{random}`` (24 hex characters)
        and ``{random_digits}`` (14 digits) filled in."""
        out: dict[str, str] = {}
        for f in self.fields:
            if f.get("sandbox_default") is None:
                continue
            value = str(f["sandbox_default"]).replace("{sandbox_url}", sandbox_url.rstrip("/"))
            value = value.replace("{random}", secrets.token_hex(12))
            digits = "".join(secrets.choice("0123456789") for _ in range(14))
            out[str(f["name"])] = value.replace("{random_digits}", digits)
        return out

    def test_customer(self) -> str:
        """A fresh test customer id in the channel's scheme: a +1555 number for phones, a
        numeric user id for any other scheme."""
        digits = "".join(random.choices("0123456789", k=7))  # noqa: S311 - a test customer
        if self.customer_id_scheme == "phone":
            return "+1555" + digits
        return "9" + "".join(random.choices("0123456789", k=2)) + digits  # noqa: S311


@dataclass(frozen=True)
class Channels:
    """Every channel the API declares, in its order."""

    all: tuple[UiChannel, ...]

    @classmethod
    def from_api(cls, data: Any) -> Channels:
        """Build from the ``GET /admin/channels`` answer (a list, or ``{"items": [...]}``);
        anything else gives no channels."""
        if isinstance(data, dict):
            data = data.get("items") or data.get("channels")
        items = data if isinstance(data, list) else []
        return cls(
            tuple(UiChannel.from_api(d) for d in items if isinstance(d, dict) and d.get("kind"))
        )

    @property
    def labels(self) -> KindLabels:
        """kind → label."""
        return KindLabels((c.kind, c.label) for c in self.all)

    def get(self, kind: str) -> UiChannel | None:
        """The channel of ``kind``, or ``None`` when the API does not declare it."""
        return next((c for c in self.all if c.kind == kind), None)

    @property
    def first_kind(self) -> str:
        """The kind the add-bot form starts on."""
        return self.all[0].kind if self.all else ""
