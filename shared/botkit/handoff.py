"""Human handoff: per-bot settings, the offline triggers and the acknowledgement text (pure).

Who owns a conversation, and every change of it, lives in :mod:`shared.store.handovers` (one
module, one transaction per change). This module only reads: the instance config's ``handoff``
section (:class:`HandoffSettings`), whether a message asks for a person
(:func:`asks_for_person`, an English and Russian phrase match that needs no model), whether the
customer is frustrated (:func:`is_frustrated`: repeated "not helpful" signals, or the same
question three times) and what the customer is told (:func:`ack_text`, with the next working
period when the bot has business hours). The decision step's ``ownership`` and
``handoff_triggers`` policies (:mod:`shared.botkit.decide`) use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The triggers a bot can switch off one by one (all on by default).
TRIGGERS = (
    "ask_for_person",
    "frustration",
    "llm_escalate",
    "manager_button",
    "operator_message",
    "message_echoes",
)
DEFAULT_ACK_TEXT = "A manager will answer you here shortly."
DEFAULT_AFTER_HOURS_TEXT = "Our working hours begin {opens}."
DEFAULT_EXPIRED_TEXT = (
    "Sorry, no manager is free right now. I'll keep helping you here; "
    'write "manager" again any time.'
)
DEFAULT_PENDING_TIMEOUT_MIN = 30.0
DEFAULT_RENOTIFY_MIN = 10.0
DEFAULT_IDLE_CLOSE_MIN = 24 * 60.0
#: How many earlier messages the frustration check looks at.
FRUSTRATION_WINDOW = 10
#: Longest message still read as a request for a person (longer ones are questions).
MAX_REQUEST_WORDS = 12
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)

# Who: a person (English words, Russian stems matched as prefixes).
_PERSON_EN = frozenset(
    {
        "person",
        "human",
        "humans",
        "operator",
        "manager",
        "agent",
        "representative",
        "staff",
        "employee",
        "consultant",
    }
)
_PERSON_RU = (
    "человек",
    "оператор",
    "менеджер",
    "консультант",
    "сотрудник",
    "живо",
    "специалист",
    "админ",
)
# Asking: a verb or phrase of wanting to be put through.
_ASK_EN = frozenset(
    {
        "talk",
        "speak",
        "chat",
        "connect",
        "transfer",
        "want",
        "need",
        "get",
        "call",
        "give",
        "put",
        "contact",
        "reach",
        "let",
        "can",
        "could",
        "please",
        "pls",
        "real",
        "live",
    }
)
_ASK_RU = (
    "позов",
    "соедин",
    "хочу",
    "нуже",
    "нужн",
    "дайте",
    "дай",
    "переключ",
    "поговор",
    "связ",
    "можно",
    "пожалуйста",
    "позвать",
    "переведи",
    "переведите",
    "зов",
)
# Phrases that say it outright, normalised (checked as contiguous word runs).
_PHRASES = (
    "talk to a person",
    "talk to a human",
    "speak to a human",
    "speak to a person",
    "real person",
    "live agent",
    "live person",
    "customer service",
    "human please",
    "позовите человека",
    "живой человек",
    "живого человека",
    "с человеком",
    "с оператором",
    "с менеджером",
)
_NOT_HELPFUL = (
    "not helpful",
    "unhelpful",
    "useless",
    "doesn t help",
    "does not help",
    "didn t help",
    "did not help",
    "not what i asked",
    "you don t understand",
    "you do not understand",
    "stupid bot",
    "this is not helping",
    "that s not helpful",
    "no help",
    "бесполезно",
    "бесполезен",
    "бесполезная",
    "не помогло",
    "не помогает",
    "не помог",
    "ты не понимаешь",
    "вы не понимаете",
    "не то",
    "тупой бот",
)


def normalize(text: str) -> str:
    """Lower case, ``ё`` as ``е``, words only (punctuation and apostrophes become spaces)."""
    return " ".join(_WORD_RE.findall(text.lower().replace("ё", "е")))


def _contains(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def asks_for_person(text: str) -> bool:
    """Whether a message asks for a person ("I want to talk to a person", "позовите
    оператора", "manager please"). Offline: a phrase list, or a short message naming a person
    together with asking for one (or naming only a person: "operator", "менеджер")."""
    typed = normalize(text)
    if not typed:
        return False
    if any(_contains(typed, p) for p in _PHRASES):
        return True
    words = typed.split()
    if len(words) > MAX_REQUEST_WORDS:
        return False
    person = any(w in _PERSON_EN or w.startswith(_PERSON_RU) for w in words)
    if not person:
        return False
    if len(words) <= 2:
        return True  # "operator", "a human", "менеджер пожалуйста"
    return any(w in _ASK_EN or w.startswith(_ASK_RU) for w in words)


def not_helpful(text: str) -> bool:
    """Whether a message says the bot is not helping ("useless", "бесполезно")."""
    typed = normalize(text)
    return bool(typed) and any(_contains(typed, p) for p in _NOT_HELPFUL)


def is_frustrated(text: str, earlier: Iterable[str]) -> bool:
    """Repeated "not helpful" signals (this message and one of the earlier ones), or the same
    question a third time (this one and two earlier ones, at least two words).

    Args:
        text: this message.
        earlier: the customer's earlier messages, newest first (:data:`FRUSTRATION_WINDOW`).
    """
    previous = [normalize(t) for t in list(earlier)[:FRUSTRATION_WINDOW]]
    if not_helpful(text) and any(not_helpful(p) for p in previous):
        return True
    typed = normalize(text)
    if len(typed.split()) < 2:
        return False
    return sum(1 for p in previous if p == typed) >= 2


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When people work: the same hours on the listed weekdays, in one time zone."""

    tz: ZoneInfo
    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def from_config(cls, raw: Any) -> BusinessHours | None:
        """``{"timezone": "Europe/Berlin", "days": [0..6], "start": "09:00", "end": "18:00"}``
        (Monday is 0); ``None`` when absent or unreadable."""
        if not isinstance(raw, Mapping) or not raw.get("start") or not raw.get("end"):
            return None
        try:
            tz = ZoneInfo(str(raw.get("timezone") or "UTC"))
            start = time.fromisoformat(str(raw["start"]))
            end = time.fromisoformat(str(raw["end"]))
        except (ValueError, ZoneInfoNotFoundError):
            return None
        days = raw.get("days")
        chosen = (
            frozenset(int(d) for d in days if 0 <= int(d) <= 6) if days else frozenset(range(5))
        )
        if start >= end or not chosen:
            return None
        return cls(tz=tz, days=chosen, start=start, end=end)

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` falls in a working period."""
        local = now.astimezone(self.tz)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime) -> datetime:
        """The start of the next working period after ``now`` (in the hours' time zone)."""
        local = now.astimezone(self.tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            opening = datetime.combine(day, self.start, tzinfo=self.tz)
            if day.weekday() in self.days and opening > local:
                return opening
        return local  # unreachable: some weekday is always listed


@dataclass(frozen=True, slots=True)
class HandoffSettings:
    """The instance config's ``handoff`` section, with defaults."""

    enabled: bool = True
    triggers: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(TRIGGERS, True))
    ack_text: str = DEFAULT_ACK_TEXT
    after_hours_text: str = DEFAULT_AFTER_HOURS_TEXT
    expired_text: str = DEFAULT_EXPIRED_TEXT
    pending_timeout: timedelta = timedelta(minutes=DEFAULT_PENDING_TIMEOUT_MIN)
    renotify_after: timedelta = timedelta(minutes=DEFAULT_RENOTIFY_MIN)
    idle_close: timedelta | None = timedelta(minutes=DEFAULT_IDLE_CLOSE_MIN)
    hours: BusinessHours | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HandoffSettings:
        """Read ``config["handoff"]`` (missing keys take the defaults)."""
        raw = config.get("handoff")
        raw = raw if isinstance(raw, Mapping) else {}
        triggers = dict.fromkeys(TRIGGERS, True)
        given = raw.get("triggers")
        if isinstance(given, Mapping):
            triggers.update({k: bool(v) for k, v in given.items() if k in triggers})

        def minutes(key: str, default: float) -> timedelta:
            value = raw.get(key)
            number = float(value) if isinstance(value, int | float) and value > 0 else default
            return timedelta(minutes=number)

        idle = raw.get("idle_close_minutes", DEFAULT_IDLE_CLOSE_MIN)
        return cls(
            enabled=raw.get("enabled") is not False,
            triggers=triggers,
            ack_text=str(raw.get("ack_text") or DEFAULT_ACK_TEXT),
            after_hours_text=str(raw.get("after_hours_text") or DEFAULT_AFTER_HOURS_TEXT),
            expired_text=str(raw.get("expired_text") or DEFAULT_EXPIRED_TEXT),
            pending_timeout=minutes("pending_timeout_minutes", DEFAULT_PENDING_TIMEOUT_MIN),
            renotify_after=minutes("renotify_minutes", DEFAULT_RENOTIFY_MIN),
            idle_close=(
                timedelta(minutes=float(idle))
                if isinstance(idle, int | float) and idle > 0
                else None
            ),
            hours=BusinessHours.from_config(raw.get("hours")),
        )

    def on(self, trigger: str) -> bool:
        """Whether handoff is enabled and ``trigger`` is switched on."""
        return self.enabled and bool(self.triggers.get(trigger, False))


def settings_of(config: Mapping[str, Any]) -> HandoffSettings:
    """The bot's handoff settings (see :class:`HandoffSettings`)."""
    return HandoffSettings.from_config(config)


def ack_text(settings: HandoffSettings, now: datetime) -> str:
    """What the customer is told once per handover: the ack text, and outside business hours
    when the next working period begins ("Our working hours begin Mon 09:00 (Europe/Berlin).")."""
    hours = settings.hours
    if hours is None or hours.is_open(now):
        return settings.ack_text
    opening = hours.next_opening(now)
    opens = f"{WEEKDAYS[opening.weekday()]} {opening:%H:%M} ({hours.tz.key})"
    return f"{settings.ack_text} {settings.after_hours_text.replace('{opens}', opens)}"
