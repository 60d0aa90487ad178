"""Twilio Messages API client: sends rendered SMS through the official ``twilio`` SDK.

The SDK's asynchronous client (``create_async`` over ``AsyncTwilioHttpClient``) runs on the bot's
shared aiohttp session, so no thread is needed. The sender is the Messaging Service when one is
configured, else the from-number. Errors become :class:`~shared.channels.base.SendError`: 429,
5xx, 20429 and network errors are retryable (``Retry-After`` honoured); everything else is
permanent, notably 21610 (the recipient replied STOP) and 21211/21614 (not a valid number).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client
from yarl import URL

from shared.botkit.spec import ChannelAdapter, PartCallback, part_tag, send_parts
from shared.channels.base import CustomerRef, Reply, SendError
from sms_bot.parse import TAG_PARAM
from sms_bot.render import render

logger = logging.getLogger(__name__)
# The SDK logs every request at INFO ("-- BEGIN Twilio API Request --"); keep only problems.
_sdk_logger = logging.getLogger(f"{__name__}.sdk")
_sdk_logger.setLevel(logging.WARNING)

DEFAULT_BASE_URL = "https://api.twilio.com"
#: How much of Twilio's error text is kept (it is stored and shown to the bot's owner).
ERROR_TEXT_MAX = 300
UNSUBSCRIBED = 21610
INVALID_NUMBERS = frozenset({21211, 21614})
RETRYABLE_CODES = frozenset({20429, 20500, 20503})


class _SessionHttpClient(AsyncTwilioHttpClient):
    """The SDK's async HTTP client on a given aiohttp session, keeping the last answer.

    One instance per send: the last response (for its ``Retry-After`` header) then belongs to
    that send alone.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(pool_connections=False, logger=_sdk_logger)
        self.session = session
        self.last_response: TwilioResponse | None = None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """Send as the SDK would, with the credentials as a header (aiohttp deprecates
        ``auth=``), and remember the answer."""
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        response = await super().request(
            method, url, params=params, data=data, headers=headers, timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self.last_response = response
        return response

    async def close(self) -> None:
        """Leave the shared session open (it belongs to the bot)."""


def _retry_after(response: TwilioResponse | None) -> float | None:
    if response is None:
        return None
    headers = response.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_exception(exc: TwilioRestException, retry_after: float | None) -> SendError:
    """Map a Twilio REST error to a :class:`SendError`."""
    status = int(exc.status or 0)
    code = exc.code if isinstance(exc.code, int) else None
    message = str(exc.msg or f"HTTP {status}").strip()[:ERROR_TEXT_MAX]
    if code == UNSUBSCRIBED:
        return SendError(
            f"recipient unsubscribed (replied STOP) (21610): {message}", retryable=False, code=code
        )
    if code in INVALID_NUMBERS:
        return SendError(f"invalid recipient number ({code}): {message}", retryable=False,
                         code=code)
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    return SendError(
        f"Twilio {status} ({code}): {message}",
        retryable=retryable,
        retry_after=retry_after if retryable else None,
        code=code,
    )


class TwilioAdapter(ChannelAdapter):
    """Sends SMS from one Twilio account.

    Args:
        session: the bot's shared aiohttp session.
        account_sid: ``AC...``.
        auth_token: the account's auth token.
        base_url: ``twilio_base_url`` (``https://api.twilio.com`` or the sandbox's ``/twilio``).
        from_number: E.164 sender used when no Messaging Service is configured.
        messaging_service_sid: ``MG...``; preferred sender when set.
        status_callback: the bot's public ``/status`` URL, or ``None`` for no callbacks.
        timeout_s: per-message timeout.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str = DEFAULT_BASE_URL,
        from_number: str = "",
        messaging_service_sid: str = "",
        status_callback: str | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.session = session
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.timeout_s = timeout_s

    def _sender(self) -> dict[str, str]:
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        if self.from_number:
            return {"from_": self.from_number}
        raise SendError(
            "no sender configured: set messaging_service_sid or from_number", retryable=False
        )

    def callback_url(self, tag: str | None) -> str | None:
        """The ``StatusCallback`` for one message: the bot's ``/status`` URL, with
        ``?ob={tag}`` when the message is tagged (Twilio calls the URL exactly as given, so the
        tag comes back with every status of that message)."""
        if not self.status_callback or tag is None:
            return self.status_callback
        return str(URL(self.status_callback).update_query({TAG_PARAM: tag}))

    async def send_sms(self, to: str, body: str, *, tag: str | None = None) -> str:
        """Send one message; return its ``SM...`` sid.

        Args:
            to: E.164 recipient.
            body: the text.
            tag: ``{tag}:{part}`` to put in the status callback URL (see :meth:`callback_url`).

        Raises:
            SendError: Twilio refused it or could not be reached.
        """
        if not self.account_sid or not self.auth_token:
            raise SendError("account_sid and auth_token are required", retryable=False)
        http = _SessionHttpClient(self.session)
        client = Client(self.account_sid, self.auth_token, http_client=http)
        client.api.base_url = self.base_url
        params: dict[str, Any] = {"to": to, "body": body, **self._sender()}
        callback = self.callback_url(tag)
        if callback:
            params["status_callback"] = callback
        try:
            message = await asyncio.wait_for(
                client.messages.create_async(**params), self.timeout_s
            )
        except TwilioRestException as exc:
            raise error_from_exception(exc, _retry_after(http.last_response)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(
                f"Twilio unreachable: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        except TwilioException as exc:
            raise SendError(f"Twilio error: {str(exc)[:ERROR_TEXT_MAX]}", retryable=False) from exc
        if not message.sid:
            raise SendError("Twilio answered without a message sid", retryable=False)
        return str(message.sid)

    async def send(
        self,
        customer: CustomerRef,
        reply: Reply,
        *,
        reply_to: str | None = None,
        tag: str | None = None,
        skip_parts: frozenset[int] = frozenset(),
        on_part: PartCallback | None = None,
    ) -> list[str]:
        """Render and send one reply; return the message sids of the parts sent.

        With a ``tag`` and a status callback URL, each part's ``StatusCallback`` carries
        ``?ob={tag}:{part}``, so Twilio's status callbacks confirm which part it accepted.

        Raises:
            SendError: no phone, an audio reply, or Twilio refused (parts accepted before were
                reported to ``on_part``; the next attempt skips them).
        """
        phone = customer.phone
        if not phone:
            raise SendError("customer has no phone number", retryable=False)
        try:
            bodies = render(reply)
        except ValueError as exc:
            raise SendError(str(exc), retryable=False) from exc

        async def send_one(index: int, body: str) -> str:
            return await self.send_sms(
                phone, body, tag=part_tag(tag, index) if tag is not None else None
            )

        return await send_parts(bodies, send_one, skip_parts=skip_parts, on_part=on_part)
