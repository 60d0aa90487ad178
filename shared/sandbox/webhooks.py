"""Provider → bot status webhooks: what Meta and Twilio send after they accept a message.

After the Graph API sandbox accepts a message it POSTs a signed Cloud API ``statuses`` webhook
(``status: "sent"``, echoing ``biz_opaque_callback_data``) to the URL registered for the sending
``phone_number_id`` (``POST /_sandbox/webhooks``). After the Twilio sandbox accepts a message
with a ``StatusCallback`` it POSTs a signed ``MessageStatus=sent`` form to that URL.

Deliveries run in the background and never delay the send's answer. Like Meta (which retries for
up to 7 days), every non-200 answer and connection error is retried with exponential back-off,
here for up to :data:`RETRY_FOR_S` seconds. The queue is bounded: past :data:`QUEUE_MAX` waiting
deliveries new ones are dropped (and counted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

logger = logging.getLogger(__name__)

RETRY_FOR_S = 120.0
QUEUE_MAX = 10_000
IN_FLIGHT_MAX = 256
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 5.0
TIMEOUT_S = 10.0


@dataclass
class GraphWebhook:
    """Where the statuses of one WhatsApp business number go."""

    phone_number_id: str
    url: str
    app_secret: str
    waba_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /_sandbox/webhooks`` (the secret masked)."""
        return {
            "provider": "graph",
            "phone_number_id": self.phone_number_id,
            "url": self.url,
            "app_secret": "***",
            "waba_id": self.waba_id,
        }


@dataclass
class Delivery:
    """One webhook POST to make (and retry)."""

    url: str
    body: bytes
    headers: dict[str, str]
    deadline: float = 0.0


@dataclass
class EmitterStats:
    """Counters shown by ``GET /_sandbox/webhooks``."""

    queued: int = 0
    delivered: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    dropped: int = 0
    last_errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        """Remember one failed attempt (the last few are kept)."""
        self.failed_attempts += 1
        self.last_errors = [*self.last_errors[-4:], text]


def meta_signature(raw: bytes, app_secret: str) -> str:
    """``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def twilio_signature(url: str, form: Mapping[str, str], auth_token: str) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by the sorted form fields
    (each name immediately followed by its value), as Twilio documents."""
    data = url + "".join(f"{key}{form[key]}" for key in sorted(form))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def graph_status_body(
    hook: GraphWebhook,
    *,
    wamid: str,
    recipient_id: str,
    status: str = "sent",
    biz_opaque_callback_data: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A Cloud API ``statuses`` webhook body for one message, shaped as Meta sends it."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(timestamp if timestamp is not None else time.time())),
        "recipient_id": recipient_id,
    }
    if biz_opaque_callback_data is not None:
        entry["biz_opaque_callback_data"] = biz_opaque_callback_data
    return {
        "object": "whatsapp_business_account",
        "entry": [{
            "id": hook.waba_id or hook.phone_number_id,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": hook.phone_number_id,
                        "phone_number_id": hook.phone_number_id,
                    },
                    "statuses": [entry],
                },
            }],
        }],
    }


class WebhookEmitter:
    """Queues status webhooks and delivers them in the background, retrying failures.

    Args:
        retry_for_s: how long one delivery is retried before it is given up.
        queue_max: deliveries that may wait; more are dropped.
    """

    def __init__(self, *, retry_for_s: float = RETRY_FOR_S, queue_max: int = QUEUE_MAX) -> None:
        self.retry_for_s = retry_for_s
        self.queue_max = queue_max
        self.graph: dict[str, GraphWebhook] = {}
        self.stats = EmitterStats()
        self._queue: asyncio.Queue[Delivery] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0

    # -- registration -----------------------------------------------------------------------

    def register_graph(self, hook: GraphWebhook) -> None:
        """Send the statuses of ``hook.phone_number_id`` to ``hook.url``."""
        self.graph[hook.phone_number_id] = hook

    def clear(self) -> int:
        """Forget every registration and drop deliveries not made yet; return how many
        registrations went."""
        removed = len(self.graph)
        self.graph.clear()
        self._generation += 1  # in-flight retries of the old registrations stop
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        return removed

    def pending(self) -> int:
        """Deliveries queued or being attempted."""
        return (self._queue.qsize() if self._queue is not None else 0) + len(self._tasks)

    # -- emitting ---------------------------------------------------------------------------

    def graph_message_accepted(
        self,
        phone_number_id: str,
        *,
        wamid: str,
        recipient_id: str,
        biz_opaque_callback_data: str | None,
    ) -> bool:
        """Queue the ``sent`` status of an accepted Graph message (no-op when unregistered)."""
        hook = self.graph.get(phone_number_id)
        if hook is None:
            return False
        body = graph_status_body(
            hook, wamid=wamid, recipient_id=recipient_id,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(raw, hook.app_secret),
        }
        return self._enqueue(Delivery(hook.url, raw, headers))

    def twilio_message_accepted(
        self, callback_url: str, *, auth_token: str, form: Mapping[str, str]
    ) -> bool:
        """Queue a Twilio status callback (``form``) to a message's ``StatusCallback``."""
        raw = urlencode(form).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(callback_url, form, auth_token),
        }
        return self._enqueue(Delivery(callback_url, raw, headers))

    def _enqueue(self, delivery: Delivery) -> bool:
        if self._queue is None:
            logger.warning("webhook emitter not started; status webhook dropped")
            self.stats.dropped += 1
            return False
        delivery.deadline = time.monotonic() + self.retry_for_s
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            logger.warning("status webhook queue full; delivery dropped")
            return False
        self.stats.queued += 1
        return True

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering (on the running loop)."""
        self._queue = asyncio.Queue(maxsize=self.queue_max)
        self._slots = asyncio.Semaphore(IN_FLIGHT_MAX)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        self._dispatcher = asyncio.create_task(self._dispatch(), name="sandbox-webhooks")

    async def stop(self) -> None:
        """Stop delivering; deliveries not made yet are dropped."""
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
        self._queue = None
        self._dispatcher = None

    async def _dispatch(self) -> None:
        assert self._queue is not None  # noqa: S101 - set by start()
        assert self._slots is not None  # noqa: S101 - set by start()
        while True:
            delivery = await self._queue.get()
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver(delivery, self._generation))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._slots is not None:
            self._slots.release()

    async def _deliver(self, delivery: Delivery, generation: int) -> None:
        assert self._session is not None  # noqa: S101 - set by start()
        delay = FIRST_DELAY_S
        while generation == self._generation:
            self.stats.attempts += 1
            try:
                async with self._session.post(
                    delivery.url, data=delivery.body, headers=delivery.headers
                ) as res:
                    await res.read()
                    if res.status == 200:
                        self.stats.delivered += 1
                        return
                    self.stats.error(f"HTTP {res.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.stats.error(type(exc).__name__)
            if time.monotonic() + delay > delivery.deadline:
                self.stats.gave_up += 1
                logger.warning("status webhook given up after %.0f s", self.retry_for_s)
                return
            await asyncio.sleep(delay)
            delay = min(MAX_DELAY_S, delay * 2)
