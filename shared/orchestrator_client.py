"""Async client a bot uses to reach the orchestrator's internal API (docs/internals.md).

Every call carries ``Authorization: Bearer <token>`` and the current ``X-Request-ID``. The token
is refreshed before it expires (:meth:`OrchestratorClient.run_token_refresher`). Calls that feed a
reply to a customer never raise: :meth:`OrchestratorClient.llm_reply` returns ``None`` on 404,
5xx, timeouts and connection errors so the caller sends its fallback text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp

from shared.logging import current_request_id
from shared.tokens import unverified_expiry

logger = logging.getLogger(__name__)


class OrchestratorError(Exception):
    """The orchestrator could not be reached or refused a request."""


class OrchestratorUnavailable(OrchestratorError):
    """The orchestrator did not answer at all (connection refused or dropped)."""


class OrchestratorClient:
    """Internal-API client bound to one bot instance.

    Args:
        base_url: ``ORCHESTRATOR_URL``.
        token: the internal JWT from ``BOT_INTERNAL_TOKEN``.
        instance_id: this bot's id.
        timeout_s: per-request timeout.
        llm_timeout_s: timeout of ``/internal/llm/reply`` (generation is slower).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        instance_id: str,
        *,
        timeout_s: float = 10.0,
        llm_timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.instance_id = instance_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._llm_timeout = aiohttp.ClientTimeout(total=llm_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        request_id = current_request_id()
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    # -- config ---------------------------------------------------------------------------

    async def fetch_config(
        self, *, attempts: int = 8, base_delay_s: float = 0.25, max_delay_s: float = 5.0
    ) -> dict[str, Any]:
        """Fetch this bot's config, retrying with exponential backoff and jitter.

        Args:
            attempts: how many tries before giving up.
            base_delay_s: first back-off delay.
            max_delay_s: cap on one delay.

        Returns:
            The flat config dict (secrets in clear).

        Raises:
            OrchestratorError: every attempt failed, or the token was refused (401/403 are not
                retried: a refused token will not become valid by waiting).
        """
        url = f"{self.base_url}/internal/config"
        last_error = "no attempt made"
        for attempt in range(attempts):
            try:
                async with self._get_session().get(
                    url, headers=self._headers(), timeout=self._timeout
                ) as resp:
                    if resp.status == 200:
                        data = await resp.json()
                        if not isinstance(data, dict):
                            raise OrchestratorError("config is not a JSON object")
                        return data
                    body = (await resp.text())[:200]
                    if resp.status in (401, 403):
                        raise OrchestratorError(f"config refused: {resp.status} {body}")
                    last_error = f"HTTP {resp.status}: {body}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            delay = min(max_delay_s, base_delay_s * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
            logger.warning(
                "config fetch failed, retrying",
                extra={"attempt": attempt + 1, "error": last_error, "delay_s": round(delay, 2)},
            )
            if attempt + 1 < attempts:
                await asyncio.sleep(delay)
        raise OrchestratorError(f"config fetch failed after {attempts} attempts: {last_error}")

    # -- token ----------------------------------------------------------------------------

    async def refresh_token(self) -> bool:
        """Exchange the current token for a fresh one.

        Returns:
            True when a new token was stored.
        """
        async with self._refresh_lock:
            try:
                async with self._get_session().post(
                    f"{self.base_url}/internal/token/refresh",
                    headers=self._headers(),
                    timeout=self._timeout,
                ) as resp:
                    if resp.status != 200:
                        logger.warning("token refresh refused", extra={"status": resp.status})
                        return False
                    data = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                logger.warning("token refresh failed", extra={"error": str(exc)})
                return False
            token = data.get("token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                return False
            self.token = token
            logger.info("internal token refreshed")
            return True

    def seconds_until_refresh(self, *, now: float | None = None, margin_s: float = 300.0) -> float:
        """Return how long to wait before refreshing (never negative).

        Refresh ``margin_s`` before ``exp``; a short-lived token keeps the last 20% of its
        remaining life as the margin instead, so it is not refreshed in a tight loop.
        """
        current = time.time() if now is None else now
        exp = unverified_expiry(self.token)
        if exp is None:
            return 600.0
        remaining = exp - current
        return max(0.0, remaining - min(margin_s, remaining * 0.2))

    async def run_token_refresher(self, stop: asyncio.Event) -> None:
        """Refresh the token before it expires until ``stop`` is set."""
        while not stop.is_set():
            wait = max(1.0, self.seconds_until_refresh())
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return
            except TimeoutError:
                pass
            if not await self.refresh_token():
                # Try again soon; the old token may still be valid for a while.
                await asyncio.sleep(5)

    # -- events and AI ----------------------------------------------------------------------

    async def post_event(
        self, type_: str, message: str = "", data: dict[str, Any] | None = None
    ) -> bool:
        """Report a lifecycle or error event; never raises.

        Returns:
            True when the orchestrator accepted it.
        """
        body = {"type": type_, "message": message, "data": data or {}}
        try:
            async with self._get_session().post(
                f"{self.base_url}/internal/events",
                json=body,
                headers=self._headers(),
                timeout=self._timeout,
            ) as resp:
                ok = resp.status in (200, 201, 202)
                if not ok:
                    logger.warning("event refused", extra={"status": resp.status, "type": type_})
                return ok
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("event not delivered", extra={"error": str(exc), "type": type_})
            return False

    async def llm_reply(
        self, text: str, history: list[dict[str, str]], customer: str
    ) -> dict[str, Any] | None:
        """Ask the orchestrator's LLM for an answer.

        Args:
            text: the customer's message.
            history: the last messages, oldest first:
                ``{"role": "user"|"assistant", "text": ...}``.
            customer: the customer's address (phone / BSUID / chat id), for the orchestrator's
                logs and handovers.

        Returns:
            The answer dict (``text``, ``confidence``, ``sources``, ``usage``, ``escalate``) or
            ``None`` when there is no usable answer (404, 5xx, timeout, empty text): the caller
            sends its fallback text.

        Raises:
            OrchestratorUnavailable: the orchestrator could not be reached at all, or answered
                503 with ``Retry-After`` (it is still loading its models).
        """
        body = {"text": text, "history": history, "customer": customer}
        try:
            async with self._get_session().post(
                f"{self.base_url}/internal/llm/reply",
                json=body,
                headers=self._headers(),
                timeout=self._llm_timeout,
            ) as resp:
                if resp.status == 503 and resp.headers.get("Retry-After"):
                    # Warming up (loading its models): as good as unreachable for a moment;
                    # the caller waits for the real answer instead of sending its fallback.
                    raise OrchestratorUnavailable(
                        f"warming up (Retry-After: {resp.headers['Retry-After']})"
                    )
                if resp.status != 200:
                    logger.info("llm reply unavailable", extra={"status": resp.status})
                    return None
                data = await resp.json()
        except aiohttp.ClientConnectionError as exc:
            # Nobody answered: the orchestrator is down or restarting. That is not "the LLM has
            # no answer" — the caller waits for it rather than sending its fallback text.
            raise OrchestratorUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("llm reply failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None
        if not isinstance(data, dict) or not str(data.get("text") or "").strip():
            return None
        return data

    async def post_stt(
        self, audio: bytes, mime: str = "audio/ogg", filename: str = "voice.ogg"
    ) -> str | None:
        """Transcribe a customer's voice message through ``POST /internal/stt``.

        Args:
            audio: the voice message bytes as the provider delivered them.
            mime: their MIME type.
            filename: a file name for the multipart upload.

        Returns:
            The transcript, or ``None`` when there is none (STT not configured, 4xx/5xx,
            timeout, connection error, empty text): the caller treats the note as untranscribed.
        """
        form = aiohttp.FormData()
        form.add_field("file", audio, filename=filename, content_type=mime)
        try:
            async with self._get_session().post(
                f"{self.base_url}/internal/stt",
                data=form,
                headers=self._headers(),
                timeout=self._llm_timeout,
            ) as resp:
                if resp.status != 200:
                    logger.info("transcription unavailable", extra={"status": resp.status})
                    return None
                data = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("transcription failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None
        text = str(data.get("text") or "").strip() if isinstance(data, dict) else ""
        return text or None

    async def post_tts(self, text: str, voice: str | None = None) -> bytes | None:
        """Speak ``text`` with this bot's TTS engine through ``POST /internal/tts``.

        Args:
            text: what to say.
            voice: a voice name; the bot's ``tts_voice`` when ``None``.

        Returns:
            OGG/Opus bytes, or ``None`` on any failure (the text reply goes out alone).
        """
        body: dict[str, Any] = {"text": text}
        if voice:
            body["voice"] = voice
        try:
            async with self._get_session().post(
                f"{self.base_url}/internal/tts",
                json=body,
                headers=self._headers(),
                timeout=self._llm_timeout,
            ) as resp:
                if resp.status != 200:
                    logger.info("speech unavailable", extra={"status": resp.status})
                    return None
                audio = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("speech failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None
        return audio or None
