"""The channel registry: every kind of bot the fleet knows, declared once as pure data.

Each channel package declares a :class:`ChannelManifest` (``whatsapp_bot/manifest.py``,
``sms_bot/manifest.py``, ``telegram_bot/manifest.py``: ``MANIFEST``) — its kind and label, the
module the supervisor runs, its settings (:class:`ConfigField`: type, default, secret, the label
and help text the settings form shows), the customer identities it produces, what it can show
(:class:`Capabilities`), the public routes its provider calls, and how the sandbox test chat
reaches it. Everything else derives from here: the instance API's fields and defaults, secret
masking, the ``/hooks`` allow-list, the supervisor's ``python -m``, the bot's database file name,
the admin UI's add-bot list, settings form and phone simulator (through ``GET /admin/channels``).

A channel defined outside this repository's packages is added with :func:`register`, usually by
a module named in ``FLOTILLA_CHANNEL_PLUGINS`` (comma-separated module names) that
:func:`load_plugins` imports: the orchestrator does at start and passes the variable on to its
bots.

Pure data and the standard library only: the orchestrator, the admin UI and the bots import it.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

FieldType = Literal["str", "int", "bool", "url", "text"]
Simulator = Literal["buttons", "numbered", "inline"]

#: The environment variable naming plugin modules (comma-separated), each calling
#: :func:`register` on import.
PLUGINS_ENV = "FLOTILLA_CHANNEL_PLUGINS"
#: The channels shipped with Flotilla (each module has a ``MANIFEST``).
BUILTIN_MODULES: tuple[str, ...] = (
    "whatsapp_bot.manifest",
    "sms_bot.manifest",
    "telegram_bot.manifest",
)
#: Names a channel field may not take: the instance API's own keys.
RESERVED_FIELDS = frozenset(
    {"id", "kind", "name", "owner_id", "enabled", "auto_start", "webhook_port", "port_auto"}
    | {"created_at", "updated_at", "config", "secrets"}
)
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FIELD_TYPES: tuple[str, ...] = ("str", "int", "bool", "url", "text")
#: What a ``sandbox_default`` may contain besides text: ``{sandbox_url}`` (the sandbox's base
#: URL), ``{random}`` (24 random hex characters, e.g. a fake token) and ``{random_digits}``
#: (14 random digits, e.g. a fake phone number id). :func:`sandbox_values` fills them.
SANDBOX_PLACEHOLDERS: tuple[str, ...] = ("{sandbox_url}", "{random}", "{random_digits}")


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One channel setting of a bot.

    Attributes:
        name: the key in the instance API's JSON (``access_token``).
        type: ``str``, ``int``, ``bool``, ``url`` (an http(s) base URL) or ``text`` (several
            lines).
        default: the value a new bot starts with (secrets: ``""``).
        secret: encrypted at rest, masked in every answer (``****`` and the last four).
        label: the settings form's label, in plain language.
        help: one or two sentences for a business owner: what it is and where to find it.
        required: the bot cannot work without it (the form marks it).
        max_length: the longest value accepted (strings).
        sandbox_default: the value to fill when the bot is wired to the sandbox providers
            (see :data:`SANDBOX_PLACEHOLDERS`); ``None``: left as it is.
    """

    name: str
    type: FieldType
    default: Any
    secret: bool = False
    label: str = ""
    help: str = ""
    required: bool = False
    max_length: int | None = None
    sandbox_default: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The field as ``GET /admin/channels`` shows it."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "secret": self.secret,
            "label": self.label,
            "help": self.help,
            "required": self.required,
            "max_length": self.max_length,
            "sandbox_default": self.sandbox_default,
        }


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can show and when it may write (the bot runtime follows it).

    Attributes:
        voice_notes: TTS replies go out as voice notes (the adapter is ``SendsVoice``);
            ``False``: voice replies are skipped (logged) and the text reply stands alone.
        templates: approved templates may be sent outside the customer-service window.
        customer_service_window: how long after a customer's last message free-form replies
            are allowed (WhatsApp: 24 h); ``None`` when the channel has no such rule.
        max_buttons: reply buttons in one message (``None``: no buttons, options as text).
        lists: single-select list messages.
        max_text: characters in one text message (longer text is split).
        messages_per_second: the provider's sending pace for one sender (Meta: 80/s per
            number, a Twilio long code: 1/s, Telegram: 30/s per bot); ``None``: not published.
    """

    voice_notes: bool = False
    templates: bool = False
    customer_service_window: timedelta | None = None
    max_buttons: int | None = None
    lists: bool = False
    max_text: int = 4096
    messages_per_second: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (the window in seconds)."""
        window = self.customer_service_window
        return {
            "voice_notes": self.voice_notes,
            "templates": self.templates,
            "customer_service_window_s": int(window.total_seconds()) if window else None,
            "max_buttons": self.max_buttons,
            "lists": self.lists,
            "max_text": self.max_text,
            "messages_per_second": self.messages_per_second,
        }


@dataclass(frozen=True, slots=True)
class SandboxPreview:
    """How the admin's test chat reads what the bot sent from the sandbox providers.

    Attributes:
        provider: the sandbox provider that records the bot's messages (``graph``).
        base_url_field: the bot setting holding the provider's base URL.
        path: the provider's path under the sandbox URL (``/graph``).
        address: how the sandbox records the recipient: ``digits`` (phone digits), ``e164``
            (``+`` and digits) or ``raw`` (as given).
        render: how a recorded message is shown: ``graph`` (WhatsApp's interactive
            messages), ``telegram`` (inline keyboards) or ``text``.
    """

    provider: str
    base_url_field: str
    path: str
    address: Literal["digits", "e164", "raw"] = "raw"
    render: Literal["graph", "telegram", "text"] = "text"


@dataclass(frozen=True)
class ChannelManifest:
    """Everything the fleet outside a channel's package needs to know about it.

    Attributes:
        kind: the URL and database name of the channel (``whatsapp``).
        label: what people call it (``WhatsApp``).
        module: what the supervisor runs with ``python -m`` (``whatsapp_bot``).
        fields: the channel's settings, in the order the settings form shows them.
        identity_schemes: the customer identities the channel produces (``phone``, ``bsuid``).
        capabilities: what it can show and when it may write.
        public_routes: the routes its provider calls (path → methods); the only ones
            ``/hooks/{kind}/{id}/...`` forwards.
        simulator: how the test chat shows replies: ``buttons`` (WhatsApp reply buttons and
            lists), ``numbered`` (options as numbered text) or ``inline`` (inline keyboards).
        customer_id_scheme: the scheme of a simulated customer's id (``phone``).
        db_filename: the bot's SQLite file name in the data dir; ``{kind}`` and ``{id}`` are
            filled in.
        description: one sentence for the add-bot form.
        public_headers: request headers ``/hooks`` passes on to the public routes besides the
            content type and user agent (the provider's signature header).
        sandbox: how the test chat reaches the sandbox providers (``None``: no test chat).
    """

    kind: str
    label: str
    module: str
    fields: tuple[ConfigField, ...]
    identity_schemes: tuple[str, ...]
    capabilities: Capabilities
    public_routes: Mapping[str, tuple[str, ...]]
    simulator: Simulator = "numbered"
    customer_id_scheme: str = "phone"
    db_filename: str = "{kind}_bot_{id}.db"
    description: str = ""
    public_headers: tuple[str, ...] = ()
    sandbox: SandboxPreview | None = None

    def __post_init__(self) -> None:
        problems = _manifest_problems(self)
        if problems:
            raise ValueError(f"channel manifest {self.kind!r}: " + "; ".join(problems))

    def __hash__(self) -> int:
        return hash(self.kind)

    def field(self, name: str) -> ConfigField | None:
        """The setting called ``name``, if the channel has one."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Names of the settings kept encrypted and masked."""
        return tuple(f.name for f in self.fields if f.secret)

    @property
    def defaults(self) -> dict[str, Any]:
        """The non-secret settings with their defaults (a new bot's channel config)."""
        return {f.name: f.default for f in self.fields if not f.secret}

    def bot_db_filename(self, instance_id: str) -> str:
        """The SQLite file name of bot ``instance_id``."""
        return self.db_filename.replace("{kind}", self.kind).replace("{id}", instance_id)

    def to_json(self) -> dict[str, Any]:
        """The manifest as ``GET /admin/channels`` shows it."""
        return {
            "kind": self.kind,
            "label": self.label,
            "description": self.description,
            "fields": [f.to_json() for f in self.fields],
            "identity_schemes": list(self.identity_schemes),
            "capabilities": self.capabilities.to_json(),
            "public_routes": {path: list(m) for path, m in self.public_routes.items()},
            "simulator": self.simulator,
            "customer_id_scheme": self.customer_id_scheme,
            "sandbox": self.sandbox is not None,
        }


def _manifest_problems(m: ChannelManifest) -> list[str]:
    problems: list[str] = []
    if not KIND_RE.match(m.kind):
        problems.append("kind must be 2-31 lowercase letters, digits or '_'")
    if not m.module or not all(part.isidentifier() for part in m.module.split(".")):
        problems.append(f"module {m.module!r} is not a module name")
    seen: set[str] = set()
    for f in m.fields:
        if not FIELD_RE.match(f.name) or f.name in RESERVED_FIELDS:
            problems.append(f"field name {f.name!r} is not allowed")
        if f.name in seen:
            problems.append(f"field {f.name!r} is declared twice")
        seen.add(f.name)
        if f.type not in FIELD_TYPES:
            problems.append(f"field {f.name!r} has unknown type {f.type!r}")
        if f.secret and f.default not in ("", None):
            problems.append(f"secret field {f.name!r} must default to ''")
    for path, methods in m.public_routes.items():
        if not path.startswith("/") or path.startswith("/control") or ".." in path:
            problems.append(f"public route {path!r} must be an absolute path outside /control")
        if not methods:
            problems.append(f"public route {path!r} has no methods")
    if m.simulator not in ("buttons", "numbered", "inline"):
        problems.append(f"simulator {m.simulator!r} is not buttons, numbered or inline")
    if "{id}" not in m.db_filename or "/" in m.db_filename or ".." in m.db_filename:
        problems.append("db_filename must contain {id} and no path")
    if m.sandbox is not None and m.field(m.sandbox.base_url_field) is None:
        problems.append(f"sandbox base_url_field {m.sandbox.base_url_field!r} is not a field")
    return problems


# ------------------------------------------------------------------------------ the registry

_lock = threading.RLock()
_manifests: dict[str, ChannelManifest] = {}
_builtins_loaded = False


def _ensure_builtins() -> None:
    """Register the shipped channels on first use (their modules import this one)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    with _lock:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        for name in BUILTIN_MODULES:
            register(importlib.import_module(name).MANIFEST)


def register(manifest: ChannelManifest) -> ChannelManifest:
    """Add a channel; registering the same manifest again is a no-op.

    Raises:
        ValueError: another manifest already has this kind.
    """
    with _lock:
        current = _manifests.get(manifest.kind)
        if current is not None and current != manifest:
            raise ValueError(f"channel kind {manifest.kind!r} is already registered")
        _manifests[manifest.kind] = manifest
    return manifest


def get(kind: str) -> ChannelManifest:
    """The manifest of ``kind``.

    Raises:
        KeyError: no such channel (callers answer 404).
    """
    _ensure_builtins()
    return _manifests[kind]


def is_kind(kind: str) -> bool:
    """Whether ``kind`` is a registered channel."""
    _ensure_builtins()
    return kind in _manifests


def kinds() -> tuple[str, ...]:
    """Every registered kind: the shipped ones first, then plugins in registration order."""
    _ensure_builtins()
    return tuple(_manifests)


def manifests() -> tuple[ChannelManifest, ...]:
    """Every registered manifest, in :func:`kinds` order."""
    _ensure_builtins()
    return tuple(_manifests.values())


def secret_fields(kind: str) -> tuple[str, ...]:
    """The secret settings of ``kind`` (``KeyError`` for an unknown kind)."""
    return get(kind).secret_fields


def plugin_modules(value: str | None = None) -> tuple[str, ...]:
    """The module names in ``value`` (default: ``$FLOTILLA_CHANNEL_PLUGINS``)."""
    raw = os.environ.get(PLUGINS_ENV, "") if value is None else value
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def load_plugins(value: str | None = None) -> tuple[str, ...]:
    """Import the plugin modules named in ``$FLOTILLA_CHANNEL_PLUGINS`` (each registers its
    channel on import); returns the kinds registered now (shipped ones included).

    Raises:
        ImportError: a named module cannot be imported (a typo must not start a fleet that
            silently lacks a channel).
    """
    _ensure_builtins()
    for name in plugin_modules(value):
        importlib.import_module(name)
    return kinds()


def sandbox_values(kind: str, sandbox_url: str) -> dict[str, str]:
    """The settings that wire a new bot of ``kind`` to the sandbox providers at ``sandbox_url``
    (each field's ``sandbox_default`` with :data:`SANDBOX_PLACEHOLDERS` filled in)."""
    out: dict[str, str] = {}
    for f in get(kind).fields:
        if f.sandbox_default is None:
            continue
        value = f.sandbox_default.replace("{sandbox_url}", sandbox_url.rstrip("/"))
        value = value.replace("{random}", secrets.token_hex(12))
        digits = "".join(secrets.choice("0123456789") for _ in range(14))
        out[f.name] = value.replace("{random_digits}", digits)
    return out
