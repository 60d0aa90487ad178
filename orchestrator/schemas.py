"""Request/response shapes of the admin API.

The instance API is one flat JSON object per bot (as seed 004's settings tabs list the fields);
the store keeps channel/AI/access settings in ``BotInstance.config`` and secrets encrypted apart.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.botkit.followups import DEFAULT_FOLLOWUPS
from shared.channels import registry
from shared.funnel.templates import BusinessProfile
from shared.phones import normalize_phone

#: A user id as the database can hold it (a larger int would be a driver error, not a 422).
UserId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Role = Literal["admin", "user", "guest"]


def check_kind(value: str) -> str:
    """``value`` if it is a registered channel kind (``shared.channels.registry``), else
    ``ValueError`` (a 422 in a body; the instance routes answer 404 for an unknown path kind)."""
    if not registry.is_kind(value):
        known = ", ".join(registry.kinds())
        raise ValueError(f"unknown channel kind {value!r}: use one of {known}")
    return value


#: A channel kind: any kind in the registry (the shipped ones and plugins).
Kind = Annotated[str, AfterValidator(check_kind)]


class _Kinds(Sequence[str]):
    """The registered kinds, read from the registry on each use (plugins register late)."""

    def __getitem__(self, index: Any) -> Any:
        return registry.kinds()[index]

    def __len__(self) -> int:
        return len(registry.kinds())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and registry.is_kind(value)

    def __repr__(self) -> str:
        return repr(registry.kinds())


class _PerKind(Mapping[str, Any]):
    """A read-only ``kind → value`` view derived from each manifest on access."""

    def __init__(self, derive: Callable[[registry.ChannelManifest], Any]) -> None:
        self._derive = derive

    def __getitem__(self, kind: str) -> Any:
        return self._derive(registry.get(kind))

    def __iter__(self) -> Iterator[str]:
        return iter(registry.kinds())

    def __len__(self) -> int:
        return len(registry.kinds())


#: Every registered kind (``whatsapp``, ``sms``, ``telegram`` and plugins).
KINDS: Sequence[str] = _Kinds()
#: Secret fields per kind (encrypted at rest, masked in responses), from the manifests.
SECRET_FIELDS: Mapping[str, tuple[str, ...]] = _PerKind(lambda m: m.secret_fields)
#: Non-secret channel fields per kind, with their defaults, from the manifests.
CHANNEL_FIELDS: Mapping[str, dict[str, Any]] = _PerKind(lambda m: m.defaults)
#: Named rate limits (``rate_limit_count`` free-text messages per ``rate_limit_hours``), offered
#: on the Rate limiting tab. ``everyday`` is the default: an ordinary customer asking a string of
#: questions is never silenced. ``strict`` is the seed bots' 5 per 5 h (a flood guard for a
#: public number); ``off`` sets no limit. Buttons and funnel steps never count.
RATE_LIMIT_PRESETS: dict[str, tuple[int, float]] = {
    "everyday": (30, 1.0),
    "strict": (5, 5.0),
    "off": (0, 1.0),
}
#: Settings every kind has, with their defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    "llm_backend": "extractive",
    "system_prompt": "",
    "persona": "",
    "llm_params": {"temperature": 0.7, "max_tokens": 512, "top_p": 1.0},
    # Earlier messages of the conversation the LLM sees with each reply (the bot sends them).
    "llm_history": 20,
    # Quote the customer's message in a reply to one of several unanswered ones (issue 14).
    "quote_replies": True,
    "tts_enabled": False,
    "tts_engine": "piper",
    "tts_voice": "",
    "allowed_phones": [],
    "blocked_phones": [],
    "rate_limit_count": RATE_LIMIT_PRESETS["everyday"][0],
    "rate_limit_hours": RATE_LIMIT_PRESETS["everyday"][1],
    "funnel": None,
    # The template the funnel was made from (shared/funnel/templates) and the business profile
    # that filled it (name, about, hours, timezone, language, currency, contact).
    "template": None,
    "business": None,
    "fallback_text": "Thanks for your message! A colleague will get back to you shortly.",
    "knowledge_base_ids": [],
    "public_url": "",
    # Human handoff (issue 13): triggers, texts, timeouts; see HandoffConfig. None = defaults.
    "handoff": None,
    # Follow-up sequences for silent leads (issue 14): off by default; see FollowupsConfig.
    "followups": copy.deepcopy(DEFAULT_FOLLOWUPS),
}
#: A TTS voice is a bare name (piper: ``{FLOTILLA_AI_PIPER_VOICES_DIR}/{name}.onnx``), never a
#: path: no separators, no ``..``, nothing absolute.
VOICE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def check_voice_name(value: str | None) -> str | None:
    """``value`` if it is empty or a bare voice name, else ``ValueError`` (a 422)."""
    if value and (not VOICE_NAME_RE.match(value) or ".." in value):
        raise ValueError(
            "must be a voice name (letters, digits, '_', '-', '.'; no path): "
            "piper voices live in FLOTILLA_AI_PIPER_VOICES_DIR"
        )
    return value


class _ProviderUrls(Mapping[str, str]):
    """Every ``url`` field of a registered channel → its default (the official API; ``""``
    when the channel has none, so only the admin's allow-list admits a value)."""

    def _all(self) -> dict[str, str]:
        return {
            f.name: str(f.default or "")
            for m in registry.manifests()
            for f in m.fields
            if f.type == "url"
        }

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: The official API of each provider: the only base URLs a bot may use unless an admin allows
#: others (``FLOTILLA_ALLOWED_PROVIDER_URLS``; the sandbox's own URL when it runs). Derived
#: from the channel manifests' ``url`` fields (graph_api_base_url, twilio_base_url, ...).
OFFICIAL_PROVIDER_URLS: Mapping[str, str] = _ProviderUrls()


def check_base_url(value: str) -> SplitResult:
    """Parse an http(s) base URL: a host, no user info, query or fragment, a valid port.

    Raises:
        ValueError: with the reason, for the 422.
    """
    if any(ch.isspace() or ord(ch) < 32 for ch in value) or "\\" in value:
        raise ValueError("must be an http(s) URL without spaces or backslashes")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"must be an http(s) URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must not contain a query or fragment")
    return parts


def _effective_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def url_matches(url: str, entry: str) -> bool:
    """Whether ``url`` is covered by one allow-list ``entry``.

    ``host`` or ``host:port`` (no scheme) covers http(s) URLs on that host (and port);
    ``scheme://host[:port][/path]`` covers that exact origin and the path at or below ``path``
    (``/graph`` covers ``/graph`` and ``/graph/x``, not ``/graphx``).
    """
    try:
        target = check_base_url(url)
    except ValueError:
        return False
    entry = entry.strip()
    if not entry:
        return False
    if "://" not in entry:
        try:
            rule = urlsplit(f"//{entry}")
            rule_port = rule.port
        except ValueError:
            return False
        if rule.path or rule.query or rule.fragment or "@" in rule.netloc:
            return False
        if rule.hostname != target.hostname:
            return False
        return rule_port is None or rule_port == _effective_port(target)
    try:
        rule = check_base_url(entry)
    except ValueError:
        return False
    if (rule.scheme, rule.hostname, _effective_port(rule)) != (
        target.scheme,
        target.hostname,
        _effective_port(target),
    ):
        return False
    prefix = rule.path.rstrip("/")
    return not prefix or target.path == prefix or target.path.startswith(prefix + "/")


def provider_url_allowed(field: str, url: str, allowed: Iterable[str]) -> bool:
    """Whether a bot may use ``url`` for ``field``: the provider's official host, or an entry
    of the admin's allow-list."""
    official = OFFICIAL_PROVIDER_URLS.get(field)
    if official is not None and url_matches(url, official):
        return True
    return any(url_matches(url, entry) for entry in allowed)


LLM_BACKEND_RE = re.compile(r"^(vllm|gemini|local|extractive|cloud:[A-Za-z0-9_-]{1,64})$")
BSUID_RE = re.compile(r"^[A-Z]{2}\.[0-9A-Za-z]{6,64}$")


class LLMParams(BaseModel):
    """Sampling parameters passed to the bot's LLM backend."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    top_p: float = Field(default=1.0, gt=0, le=1)


HHMM_RE = r"^([01]\d|2[0-3]):[0-5]\d$"


class FollowupTouch(BaseModel):
    """One touch of a follow-up sequence: hours after the bot's last unanswered message."""

    model_config = ConfigDict(extra="forbid")

    after_hours: float = Field(gt=0, le=24 * 366)
    text: str = Field(min_length=1, max_length=1000)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a touch needs a text")
        return value.strip()


class FollowupsConfig(BaseModel):
    """``followups``: reminders to a lead who went silent (see shared.botkit.followups)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    touches: list[FollowupTouch] = Field(
        default_factory=lambda: [FollowupTouch(**t) for t in DEFAULT_FOLLOWUPS["touches"]],
        min_length=1,
        max_length=10,
    )
    quiet_start: str = Field(default=DEFAULT_FOLLOWUPS["quiet_start"], pattern=HHMM_RE)
    quiet_end: str = Field(default=DEFAULT_FOLLOWUPS["quiet_end"], pattern=HHMM_RE)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)

    @field_validator("touches")
    @classmethod
    def _increasing(cls, value: list[FollowupTouch]) -> list[FollowupTouch]:
        hours = [t.after_hours for t in value]
        if any(b <= a for a, b in zip(hours, hours[1:], strict=False)):
            raise ValueError("each touch must come later than the one before (after_hours)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Almaty)") from exc
        return value


HANDOFF_HHMM_RE = r"^([01]\d|2[0-3]):[0-5]\d$"


class HandoffTriggers(BaseModel):
    """Which events hand a conversation to a person (all on by default)."""

    model_config = ConfigDict(extra="forbid")

    ask_for_person: bool = True
    frustration: bool = True
    llm_escalate: bool = True
    manager_button: bool = True
    operator_message: bool = True
    message_echoes: bool = True


class BusinessHoursConfig(BaseModel):
    """When people answer: ``start``-``end`` on ``days`` (Monday 0) in ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, max_length=7)
    start: str = Field(default="09:00", pattern=HANDOFF_HHMM_RE)
    end: str = Field(default="18:00", pattern=HANDOFF_HHMM_RE)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (like Europe/Berlin)") from exc
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: str, info: Any) -> str:
        start = info.data.get("start")
        if start and value <= start:
            raise ValueError("end must be later than start")
        return value


class HandoffConfig(BaseModel):
    """``handoff``: when a person takes over from the bot and what the customer is told
    (see shared.botkit.handoff and docs/handoff.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    triggers: HandoffTriggers = Field(default_factory=HandoffTriggers)
    ack_text: str | None = Field(default=None, max_length=1000)
    after_hours_text: str | None = Field(default=None, max_length=1000)
    expired_text: str | None = Field(default=None, max_length=1000)
    pending_timeout_minutes: float = Field(default=30, gt=0, le=7 * 24 * 60)
    renotify_minutes: float = Field(default=10, gt=0, le=7 * 24 * 60)
    idle_close_minutes: float = Field(default=24 * 60, ge=0, le=366 * 24 * 60)
    hours: BusinessHoursConfig | None = None
    # Owner answers → knowledge base: accept the proposed Q/A pair at resolve (issue 13 item 6).
    auto_accept_answers: bool = False


#: ``scheme:value`` access-list entries (``telegram_user:12345``); see shared.botkit.access.
SCHEMED_ENTRY_RE = re.compile(r"^([a-z][a-z0-9_]{0,31}):(.+)$")
TELEGRAM_USER_RE = re.compile(r"^\d{1,20}$")
USERNAME_RE = re.compile(r"^@?[A-Za-z0-9_.]{2,64}$")
#: How people write each shipped scheme's ids (for the error message).
_SCHEME_HINTS: dict[str, str] = {
    "phone": "phone numbers like +15550100001",
    "bsuid": "WhatsApp user ids like US.1234567890",
    "telegram_user": "Telegram user ids like 12345 or telegram_user:12345",
    "username": "usernames like @name",
}
_KNOWN_SCHEMES = frozenset({*_SCHEME_HINTS, "parent_bsuid"})


def _check_access_entry(value: str) -> str:
    """The shape every access-list entry has (one line, not too long); which ids an entry may
    name depends on the bot's channel: :func:`access_entry_for`."""
    value = value.strip()
    if len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise ValueError(f"{value[:40]!r} is not a customer id (one line, at most 200 characters)")
    return value


def _scheme_value(scheme: str, value: str) -> str | None:
    """``value`` normalized as an id of ``scheme``; ``None`` when it is not one."""
    if scheme == "phone":
        try:
            return normalize_phone(value)
        except ValueError:
            return None
    if scheme in ("bsuid", "parent_bsuid"):
        return value if BSUID_RE.match(value) else None
    if scheme == "telegram_user":
        return value if TELEGRAM_USER_RE.match(value) else None
    if scheme == "username":
        return "@" + value.lstrip("@") if USERNAME_RE.match(value) else None
    return value or None  # a plugin's scheme: compared exactly by the bot


def access_entry_for(kind: str, value: str) -> str:
    """Check and normalize one access-list entry of a ``kind`` bot against the customer
    identities its channel declares (``identity_schemes``): ``scheme:value`` names one scheme;
    a bare entry is a phone (E.164), a BSUID, an ``@username`` or a numeric Telegram user id,
    whichever the channel gives.

    Raises:
        ValueError: the entry names no id this channel gives (the message says which it takes).
    """
    manifest = registry.get(kind)
    schemes = manifest.identity_schemes
    value = _check_access_entry(value)
    hints = [h for s, h in _SCHEME_HINTS.items() if s in schemes]
    hints += [f"{s}:<id>" for s in schemes if s not in _KNOWN_SCHEMES]
    takes = f"this {manifest.label} bot takes " + ("; ".join(hints) or "no customer ids")
    m = SCHEMED_ENTRY_RE.match(value)
    if m is not None:
        scheme, raw = m.group(1), m.group(2).strip()
        if scheme not in schemes:
            raise ValueError(
                f"{value!r}: {manifest.label} customers have no {scheme} ids; {takes}"
            )
        normalized = _scheme_value(scheme, raw)
        if normalized is None:
            raise ValueError(f"{value!r} is not a valid {scheme.replace('_', ' ')} id; {takes}")
        return f"{scheme}:{normalized}"
    for scheme in ("bsuid", "parent_bsuid", "username", "telegram_user", "phone"):
        if scheme not in schemes:
            continue
        if scheme == "username" and not value.startswith("@"):
            continue  # a bare name could be anything; usernames are written with "@"
        normalized = _scheme_value(scheme, value)
        if normalized is not None:
            return value if scheme == "telegram_user" else normalized
    if any(s not in _KNOWN_SCHEMES for s in schemes):
        return value  # a plugin channel's own ids: compared exactly by the bot
    raise ValueError(f"{value!r} is not a customer id {manifest.label} gives: {takes}")


class InstanceFields(BaseModel):
    """Fields a client may send; everything is optional so one model serves POST and PUT.

    The shipped channels' fields are declared here with their own checks; a plugin channel's
    fields (``shared.channels.registry``) arrive as extra keys, which the store checks against
    the bot's manifest (type, length) and refuses when the kind does not declare them.
    """

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_port: int | None = Field(default=None, ge=1024, le=65535)
    enabled: bool | None = None
    auto_start: bool | None = None
    owner_id: UserId | None = None
    # AI
    llm_backend: str | None = None
    system_prompt: str | None = Field(default=None, max_length=20000)
    persona: str | None = Field(default=None, max_length=5000)
    llm_params: LLMParams | None = None
    llm_history: int | None = Field(default=None, ge=0, le=50)
    quote_replies: bool | None = None
    fallback_text: str | None = Field(default=None, max_length=4096)
    knowledge_base_ids: list[str] | None = None
    # TTS
    tts_enabled: bool | None = None
    tts_engine: Literal["piper", "xtts", "openvoice"] | None = None
    tts_voice: str | None = Field(default=None, max_length=200)
    # Access and limits
    allowed_phones: list[str] | None = None
    blocked_phones: list[str] | None = None
    rate_limit_count: int | None = Field(default=None, ge=0, le=100000)
    rate_limit_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    funnel: dict[str, Any] | None = None
    handoff: HandoffConfig | None = None
    followups: FollowupsConfig | None = None
    # A template id: the funnel is made from it and ``business`` (or the stored profile).
    template: str | None = Field(default=None, max_length=40)
    business: BusinessProfile | None = None
    # WhatsApp
    phone_number_id: str | None = Field(default=None, max_length=64)
    waba_id: str | None = Field(default=None, max_length=64)
    access_token: str | None = Field(default=None, max_length=4096)
    verify_token: str | None = Field(default=None, max_length=512)
    app_secret: str | None = Field(default=None, max_length=512)
    graph_api_base_url: str | None = Field(default=None, max_length=500)
    graph_api_version: str | None = Field(default=None, pattern=r"^v\d+\.\d+$")
    wa_template_name: str | None = Field(default=None, max_length=512)
    wa_template_language: str | None = Field(default=None, max_length=16)
    wa_template_params: str | None = Field(default=None, max_length=2000)
    # SMS
    account_sid: str | None = Field(default=None, max_length=64)
    auth_token: str | None = Field(default=None, max_length=512)
    from_number: str | None = Field(default=None, max_length=32)
    messaging_service_sid: str | None = Field(default=None, max_length=64)
    twilio_base_url: str | None = Field(default=None, max_length=500)
    twilio_validate_signature: bool | None = None
    # Telegram
    bot_token: str | None = Field(default=None, max_length=512)
    webhook_secret: str | None = Field(default=None, max_length=256)
    telegram_api_base_url: str | None = Field(default=None, max_length=500)
    telegram_set_webhook: bool | None = None
    public_url: str | None = Field(default=None, max_length=500)

    @field_validator("llm_backend")
    @classmethod
    def _llm_backend(cls, value: str | None) -> str | None:
        if value is not None and not LLM_BACKEND_RE.match(value):
            raise ValueError(
                "unknown way of answering: pick one from the list (answer from documents, your "
                "own AI server, Google Gemini, the built-in model or a cloud provider)"
            )
        return value

    @field_validator("allowed_phones", "blocked_phones")
    @classmethod
    def _phones(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(_check_access_entry(v) for v in value if v.strip()))

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str | None) -> str | None:
        if value:
            try:
                return normalize_phone(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a valid phone number") from exc
        return value

    @field_validator(
        "graph_api_base_url", "twilio_base_url", "telegram_api_base_url", "public_url"
    )
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        # Which hosts a provider URL may name is the store's rule (it needs the settings):
        # see crud._check_provider_urls and provider_url_allowed.
        if value:
            check_base_url(value)
        return value.rstrip("/") if value else value

    @field_validator("tts_voice")
    @classmethod
    def _tts_voice(cls, value: str | None) -> str | None:
        return check_voice_name(value)

    @field_validator("knowledge_base_ids")
    @classmethod
    def _kb_ids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", item):
                raise ValueError(f"{item!r} is not a knowledge base id")
        return list(dict.fromkeys(value))


class InstanceCreate(InstanceFields):
    """POST body: ``name`` is required."""

    name: str = Field(min_length=1, max_length=200)


class UserPublic(BaseModel):
    """A user as the API shows it (never the hash)."""

    id: int
    username: str
    role: str
    active: bool
    created_at: datetime


class UserCreate(BaseModel):
    """POST /admin/users body."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role = "user"
    active: bool = True


class UserUpdate(BaseModel):
    """PATCH /admin/users/{id} body."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, min_length=8, max_length=256)
    role: Role | None = None
    active: bool | None = None


class PasswordChange(BaseModel):
    """POST /auth/password body: the signed-in user's current password and the new one."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class Token(BaseModel):
    """OAuth2 token answer."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type name
    expires_in: int
