"""In-memory state of the sandbox: the request log, accepted messages and fault rules."""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.sandbox.webhooks import WebhookEmitter

Provider = Literal["graph", "twilio", "telegram"]
PROVIDERS: tuple[Provider, ...] = ("graph", "twilio", "telegram")
FaultMode = Literal["429", "500", "slow", "error"]
FAULT_MODES: tuple[str, ...] = ("429", "500", "slow", "error")

DEFAULT_MAX_REQUESTS = 100_000
DEFAULT_MAX_MESSAGES = 100_000
MAX_MEDIA_ITEMS = 200


@dataclass
class RecordedRequest:
    """One request a provider route received, with the answer the sandbox gave."""

    seq: int
    provider: str
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, Any] | None = None
    status: int = 0
    response: Any = None
    fault: str | None = None
    ts: float = 0.0
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape served by ``GET /_sandbox/requests``."""
        data = asdict(self)
        if self.form is None:
            data.pop("form")
        else:
            data.pop("json")
        return data


@dataclass
class OutboundMessage:
    """A message a bot sent that the sandbox accepted (2xx)."""

    seq: int
    request_seq: int
    provider: str
    to: str
    sender: str
    type: str
    text: str | None
    message_id: str
    payload: Any
    ts: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape served by ``GET /_sandbox/messages``."""
        return asdict(self)


@dataclass
class FaultRule:
    """A fault to inject into matching provider requests.

    Without ``rate`` and ``count`` a rule fires on every matching request until deleted; with
    ``count`` it fires on the next N matching requests and then expires; with ``rate`` it fires
    with that probability (drawn from the sandbox's seedable RNG).
    """

    id: int
    provider: str | None
    mode: str
    rate: float | None = None
    count: int | None = None
    retry_after: int = 1
    delay: float = 0.5
    error_code: int | None = None
    error_message: str | None = None
    path_contains: str | None = None
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape served by ``GET /_sandbox/faults``."""
        return asdict(self)

    def matches(self, provider: str, path: str) -> bool:
        """Tell whether this rule applies to a request (before its rate is drawn)."""
        if self.provider is not None and self.provider != provider:
            return False
        return self.path_contains is None or self.path_contains in path


class FaultInjector:
    """Holds fault rules and decides, reproducibly, which requests they hit."""

    def __init__(self, seed: int | None = 0) -> None:
        # Not for security: a seedable RNG so fault patterns are reproducible in tests.
        self._rng = random.Random(seed)  # noqa: S311 - test fixture randomness, not crypto
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def seed(self, seed: int | None) -> None:
        """Reseed the RNG used for ``rate`` rules."""
        self._rng.seed(seed)

    def add(self, **kwargs: Any) -> FaultRule:
        """Add a rule; keyword arguments are the :class:`FaultRule` fields except ``id``."""
        rule = FaultRule(id=self._next_id, **kwargs)
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self, provider: str | None = None) -> int:
        """Remove every rule, or only the rules of one provider; return how many went."""
        before = len(self._rules)
        if provider is None:
            self._rules.clear()
        else:
            self._rules = [r for r in self._rules if r.provider != provider]
        return before - len(self._rules)

    @property
    def rules(self) -> list[FaultRule]:
        """The active rules, oldest first."""
        return list(self._rules)

    def pick(self, provider: str, path: str) -> FaultRule | None:
        """Return the first rule that fires for this request, updating its counters.

        Args:
            provider: ``graph``, ``twilio`` or ``telegram``.
            path: the request path, for rules limited by ``path_contains``.

        Returns:
            The rule that fired, or ``None`` when the request should be served normally.
        """
        for rule in self._rules:
            if not rule.matches(provider, path):
                continue
            if rule.rate is not None and self._rng.random() >= rule.rate:
                continue
            rule.fired += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self._rules.remove(rule)
            return rule
        return None


@dataclass
class MediaItem:
    """An uploaded Graph API media object (kept for download, bounded)."""

    id: str
    mime_type: str
    filename: str
    data: bytes
    sha256: str


@dataclass
class TelegramBotState:
    """What the Telegram sandbox remembers per bot token."""

    webhook_url: str = ""
    webhook_secret: str = ""
    next_message_id: dict[str, int] = field(default_factory=dict)
    updates: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    next_update_id: int = 1


class SandboxState:
    """Everything one sandbox app remembers; bounded so a long ``make run`` stays small."""

    def __init__(
        self,
        *,
        seed: int | None = 0,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_messages: int = DEFAULT_MAX_MESSAGES,
    ) -> None:
        self.requests: deque[RecordedRequest] = deque(maxlen=max_requests)
        self.messages: deque[OutboundMessage] = deque(maxlen=max_messages)
        self.faults = FaultInjector(seed)
        self.media: OrderedDict[str, MediaItem] = OrderedDict()
        self.twilio_messages: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.telegram: dict[str, TelegramBotState] = {}
        #: status webhooks to the bots (Graph registrations, Twilio ``StatusCallback``s)
        self.webhooks = WebhookEmitter()
        self.started_at = time.time()
        self._request_seq = 0
        self._message_seq = 0
        self._id_counter = 0
        self._new_message: asyncio.Event | None = None

    def next_request_seq(self) -> int:
        """Allocate the sequence number of a request about to be served."""
        self._request_seq += 1
        return self._request_seq

    def next_id(self) -> int:
        """A process-wide increasing counter for provider ids (media ids, update ids...)."""
        self._id_counter += 1
        return self._id_counter

    def record(self, entry: RecordedRequest) -> None:
        """Append a served request to the log (the oldest entries fall off past the cap)."""
        self.requests.append(entry)

    def add_message(self, **kwargs: Any) -> OutboundMessage:
        """Record an accepted outbound message and wake up long-polling readers."""
        self._message_seq += 1
        message = OutboundMessage(seq=self._message_seq, ts=time.time(), **kwargs)
        self.messages.append(message)
        if self._new_message is not None:
            self._new_message.set()
            self._new_message = None
        return message

    def remember_media(self, item: MediaItem) -> None:
        """Keep an uploaded media object, dropping the oldest past :data:`MAX_MEDIA_ITEMS`."""
        self.media[item.id] = item
        while len(self.media) > MAX_MEDIA_ITEMS:
            self.media.popitem(last=False)

    def remember_twilio_message(self, message: dict[str, Any]) -> None:
        """Keep a Twilio Message resource for ``fetch``, bounded like the message log."""
        self.twilio_messages[message["sid"]] = message
        cap = self.messages.maxlen or DEFAULT_MAX_MESSAGES
        while len(self.twilio_messages) > cap:
            self.twilio_messages.popitem(last=False)

    def telegram_bot(self, token: str) -> TelegramBotState:
        """Return (creating it on first use) the state of one Telegram bot token."""
        return self.telegram.setdefault(token, TelegramBotState())

    def find_requests(
        self, *, provider: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[RecordedRequest]:
        """Requests with ``seq > since``, optionally of one provider, oldest first."""
        found = [
            r
            for r in self.requests
            if r.seq > since and (provider is None or r.provider == provider)
        ]
        return found[:limit] if limit is not None else found

    def find_messages(
        self, *, provider: str | None = None, to: str | None = None, since: int = 0
    ) -> list[OutboundMessage]:
        """Accepted outbound messages with ``seq > since``, filtered, oldest first."""
        return [
            m
            for m in self.messages
            if m.seq > since
            and (provider is None or m.provider == provider)
            and (to is None or m.to == to)
        ]

    async def wait_for_messages(
        self,
        *,
        provider: str | None = None,
        to: str | None = None,
        since: int = 0,
        wait_s: float = 0.0,
    ) -> list[OutboundMessage]:
        """Like :meth:`find_messages`, but wait up to ``wait_s`` seconds for at least one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            found = self.find_messages(provider=provider, to=to, since=since)
            remaining = deadline - loop.time()
            if found or remaining <= 0:
                return found
            if self._new_message is None:
                self._new_message = asyncio.Event()
            event = self._new_message
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self.find_messages(provider=provider, to=to, since=since)

    def reset_log(self) -> None:
        """Forget recorded requests and messages (ids keep increasing, so they stay unique)."""
        self.requests.clear()
        self.messages.clear()

    def reset_all(self) -> None:
        """Forget requests, messages, faults, media, status webhooks and Telegram
        webhooks/updates."""
        self.reset_log()
        self.faults.clear()
        self.webhooks.clear()
        self.media.clear()
        self.twilio_messages.clear()
        for bot in self.telegram.values():
            bot.webhook_url = ""
            bot.webhook_secret = ""
            bot.updates.clear()
