"""WhatsApp Cloud (Graph) API client: sends rendered replies, templates, media, read receipts.

Customers are addressed with ``to`` (phone digits) when the phone is known, else ``recipient``
(the BSUID). Graph errors become :class:`~shared.channels.base.SendError`: 429, 5xx, network
errors and Meta's throttling codes are retryable (``Retry-After`` honoured); everything else,
notably 131062 "BSUID not supported", is permanent.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from shared.botkit.spec import VOICE_MIME, ChannelAdapter, PartCallback, part_tag, send_parts
from shared.channels.base import AudioReply, CustomerRef, Reply, SendError
from whatsapp_bot.render import CALLBACK_DATA_MAX, render, template_payload

logger = logging.getLogger(__name__)

# Meta error codes worth retrying later (throttling, temporary trouble).
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131048, 131056})
BSUID_NOT_SUPPORTED = 131062
# Where Meta serves inbound media (the URL a media lookup returns); the access token goes to
# these (and to the Graph base URL's own origin, e.g. the sandbox) and nowhere else.
MEDIA_HOSTS = frozenset({"lookaside.fbsbx.com"})
MEDIA_HOST_SUFFIXES = (".fbcdn.net", ".whatsapp.net")
#: Inbound media kept at most (WhatsApp's own limit for audio and video).
MAX_MEDIA_BYTES = 16 * 1024 * 1024
MAX_MEDIA_REDIRECTS = 3
#: How much of a provider's error text is kept (it is stored and shown to the bot's owner).
ERROR_TEXT_MAX = 300


def recipient_fields(customer: CustomerRef) -> dict[str, str]:
    """Return ``{"to": digits}`` for a known phone, else ``{"recipient": bsuid}``.

    Raises:
        SendError: the customer has neither (not retryable).
    """
    if customer.phone:
        return {"to": "".join(ch for ch in customer.phone if ch.isdigit())}
    if customer.bsuid:
        return {"recipient": customer.bsuid}
    raise SendError("customer has no phone and no BSUID", retryable=False)


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


def error_from_response(status: int, body: Any, retry_after_header: str | None) -> SendError:
    """Map a Graph API error answer to a :class:`SendError`."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    details = (error.get("error_data") or {}).get("details") if isinstance(
        error.get("error_data"), dict
    ) else None
    message = str(error.get("message") or f"HTTP {status}")
    if details:
        message = f"{message}: {details}"
    message = message[:ERROR_TEXT_MAX]
    if code == BSUID_NOT_SUPPORTED:
        return SendError(
            f"BSUID not supported for this message (131062): {message}",
            retryable=False,
            code=code,
        )
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    return SendError(
        f"Graph API {status}: {message}",
        retryable=retryable,
        retry_after=_retry_after(retry_after_header) if retryable else None,
        code=code,
    )


class WhatsAppAdapter(ChannelAdapter):
    """Sends through the Graph API of one WhatsApp phone number.

    Args:
        session: shared aiohttp session.
        base_url: ``graph_api_base_url`` (``https://graph.facebook.com`` or the sandbox).
        version: ``graph_api_version`` (``v21.0``).
        phone_number_id: the business phone number id.
        access_token: the system-user token.
        timeout_s: per-request timeout.
    """

    #: :class:`~shared.botkit.spec.SendsVoice`: audio replies go out as voice notes.
    voice_formats: tuple[str, ...] = (VOICE_MIME,)

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        version: str,
        phone_number_id: str,
        access_token: str,
        timeout_s: float = 15.0,
        max_media_bytes: int = MAX_MEDIA_BYTES,
    ) -> None:
        self.session = session
        self.base = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_media_bytes = max_media_bytes

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def _post_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/{self.phone_number_id}/messages"
        try:
            async with self.session.post(
                url, json=payload, headers=self._auth, timeout=self.timeout
            ) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                if resp.status != 200:
                    raise error_from_response(resp.status, body, resp.headers.get("Retry-After"))
                return body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(f"Graph API unreachable: {type(exc).__name__}: {exc}",
                            retryable=True) from exc

    async def _send_payload(self, payload: dict[str, Any]) -> str:
        body = await self._post_message(payload)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not messages[0].get("id"):
            raise SendError("Graph API answered without a message id", retryable=False)
        return str(messages[0]["id"])

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
        """Render and send one reply; return the WhatsApp message ids of the parts sent.

        With a ``tag``, every part carries ``biz_opaque_callback_data = "{tag}:{part}"``, which
        Meta echoes in that message's status webhooks (the bot's proof that a part was
        accepted even when it never saw the answer).

        Raises:
            SendError: Graph refused or could not be reached (parts accepted before were
                reported to ``on_part``; the next attempt skips them).
        """
        recipient = recipient_fields(customer)
        if tag is not None and len(part_tag(tag, 99)) > CALLBACK_DATA_MAX:
            raise SendError("tag too long for biz_opaque_callback_data", retryable=False)
        if isinstance(reply, AudioReply) and not reply.media_id:
            if not reply.audio:
                raise SendError("audio reply without audio", retryable=False)
            if 0 in skip_parts:
                return []  # the voice note (one part) was accepted already
            media_id = await self.upload_media(reply.audio, reply.mime)
            reply = AudioReply(media_id=media_id, mime=reply.mime)
        payloads = render(reply, recipient, reply_to=reply_to)

        async def send_one(index: int, payload: dict[str, Any]) -> str:
            if tag is not None:
                payload = {**payload, "biz_opaque_callback_data": part_tag(tag, index)}
            return await self._send_payload(payload)

        return await send_parts(payloads, send_one, skip_parts=skip_parts, on_part=on_part)

    async def send_template(
        self,
        customer: CustomerRef,
        name: str,
        language: str,
        params: list[str] | None = None,
    ) -> list[str]:
        """Send an approved template (allowed outside the 24-hour window).

        Returns:
            The WhatsApp message id, as a one-element list.
        """
        payload = template_payload(recipient_fields(customer), name, language, params)
        return [await self._send_payload(payload)]

    async def mark_read(self, message_id: str) -> bool:
        """Mark an inbound message as read (blue ticks); best effort."""
        payload = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        try:
            await self._post_message(payload)
        except SendError as exc:
            logger.debug("mark as read failed", extra={"error": str(exc)})
            return False
        return True

    async def upload_media(
        self, data: bytes, mime: str, filename: str = "voice.ogg"
    ) -> str:
        """Upload media for a later message; return its media id.

        Raises:
            SendError: the upload failed.
        """
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime.split(";")[0].strip())
        form.add_field("file", data, filename=filename, content_type=mime.split(";")[0].strip())
        url = f"{self.base}/{self.phone_number_id}/media"
        try:
            async with self.session.post(
                url, data=form, headers=self._auth, timeout=self.timeout
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict) or not body.get("id"):
                    raise error_from_response(resp.status, body, resp.headers.get("Retry-After"))
                return str(body["id"])
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SendError(f"media upload failed: {exc}", retryable=True) from exc

    def media_url_allowed(self, url: str) -> bool:
        """Whether ``url`` may be fetched with the access token: https on a Meta media host
        (:data:`MEDIA_HOSTS`, :data:`MEDIA_HOST_SUFFIXES`), or the Graph base URL's own origin
        (the sandbox)."""
        try:
            target = urlsplit(url)
            base = urlsplit(self.base)
            target_port, base_port = target.port, base.port
        except ValueError:
            return False
        host = (target.hostname or "").lower()
        if not host or "@" in target.netloc or target.scheme not in ("http", "https"):
            return False
        if (target.scheme, host, target_port) == (base.scheme, base.hostname, base_port):
            return True
        if target.scheme != "https" or target_port not in (None, 443):
            return False
        return host in MEDIA_HOSTS or host.endswith(MEDIA_HOST_SUFFIXES)

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """Fetch an inbound media object (voice notes for STT); return ``(bytes, mime)``.

        The URL the lookup returns is fetched (with the token) only from Meta's media hosts or
        the Graph base URL's origin, redirects included, and at most :attr:`max_media_bytes`.

        Raises:
            SendError: the media could not be fetched, or is not where media may be.
        """
        try:
            async with self.session.get(
                f"{self.base}/{quote(media_id, safe='')}", headers=self._auth,
                timeout=self.timeout, allow_redirects=False,
            ) as resp:
                meta = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(meta, dict) or not meta.get("url"):
                    raise error_from_response(resp.status, meta, None)
            url = str(meta["url"])
            for _hop in range(MAX_MEDIA_REDIRECTS + 1):
                if not self.media_url_allowed(url):
                    raise SendError("media URL is not on a WhatsApp media host", retryable=False)
                async with self.session.get(
                    url, headers=self._auth, timeout=self.timeout, allow_redirects=False
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                        url = str(resp.url.join(URL(resp.headers["Location"])))
                        continue
                    if resp.status != 200:
                        raise SendError(f"media download HTTP {resp.status}", retryable=True)
                    data = await self._read_capped(resp)
                    return data, str(meta.get("mime_type") or resp.content_type)
            raise SendError("media download: too many redirects", retryable=False)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SendError(f"media download failed: {exc}", retryable=True) from exc

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_media_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise SendError(f"media larger than {limit} bytes", retryable=False)
        data = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise SendError(f"media larger than {limit} bytes", retryable=False)
        return bytes(data)
