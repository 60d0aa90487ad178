"""The STT backend interface."""

from __future__ import annotations

import abc

MIME_SUFFIX = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/m4a": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "audio/flac": ".flac",
}


def filename_for(mime: str) -> str:
    """A file name whose extension matches ``mime`` (servers sniff formats by name)."""
    base = mime.split(";", 1)[0].strip().lower()
    return "voice" + MIME_SUFFIX.get(base, ".ogg")


class STTError(Exception):
    """A transcription failed for good (after retries)."""


class STTBackend(abc.ABC):
    """Transcribes a voice message."""

    name: str = "base"

    @abc.abstractmethod
    async def transcribe(self, audio: bytes, mime: str) -> str:
        """Transcribe ``audio``.

        Args:
            audio: the file bytes as the channel delivered them (OGG/Opus from WhatsApp).
            mime: its MIME type, e.g. ``audio/ogg; codecs=opus``.

        Returns:
            The transcript (may be empty for silence).

        Raises:
            STTError: the service failed for good.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release network clients; the default has nothing to release."""
