"""The TTS backend interface."""

from __future__ import annotations

import abc


class TTSError(Exception):
    """Speech could not be produced (unknown voice, engine down, empty text)."""


class TTSBackend(abc.ABC):
    """Turns text into an OGG/Opus voice note (what WhatsApp and Telegram ``sendVoice`` take)."""

    name: str = "base"

    @abc.abstractmethod
    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        """Speak ``text``.

        Args:
            text: what to say.
            voice: engine-specific voice name or path; ``None`` = the configured default.

        Returns:
            OGG/Opus bytes.

        Raises:
            TTSError: nothing could be produced.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources; the default has nothing to release."""
