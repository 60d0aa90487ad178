"""Resample PCM and encode OGG/Opus with soundfile's bundled libsndfile."""

from __future__ import annotations

import io
from math import gcd

import numpy as np
import numpy.typing as npt
import soundfile as sf

from orchestrator.ai.tts.base import TTSError

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def resample(
    audio: npt.NDArray[np.float32], src_rate: int, dst_rate: int
) -> npt.NDArray[np.float32]:
    """Polyphase resampling (scipy) of mono float audio; linear interpolation without scipy."""
    if src_rate == dst_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    try:
        from scipy.signal import resample_poly
    except ImportError:  # scipy is optional; interpolation is good enough for speech
        n_out = round(audio.shape[0] * dst_rate / src_rate)
        x_old = np.arange(audio.shape[0]) / src_rate
        x_new = np.arange(n_out) / dst_rate
        return np.interp(x_new, x_old, audio).astype(np.float32)
    g = gcd(src_rate, dst_rate)
    out = resample_poly(audio, dst_rate // g, src_rate // g)
    return np.asarray(out, dtype=np.float32)


def encode_ogg_opus(
    audio: npt.NDArray[np.float32], rate: int, *, target_rate: int = 24000
) -> bytes:
    """Encode mono float audio in [-1, 1] as OGG/Opus.

    Args:
        audio: samples (1-D, or 2-D frames x channels, which is mixed down).
        rate: their sample rate.
        target_rate: Opus rate to resample to; must be one of :data:`OPUS_RATES`.

    Returns:
        OGG/Opus bytes.

    Raises:
        TTSError: unsupported target rate or empty audio.
    """
    if target_rate not in OPUS_RATES:
        raise TTSError(f"Opus supports {OPUS_RATES} Hz, not {target_rate}")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.size == 0:
        raise TTSError("no audio to encode")
    pcm = np.clip(resample(audio.astype(np.float32), rate, target_rate), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, pcm, target_rate, format="OGG", subtype="OPUS")
    return buf.getvalue()


def audio_to_ogg_opus(data: bytes, *, target_rate: int = 24000) -> bytes:
    """Convert audio in any format libsndfile reads (WAV, FLAC, OGG...) to OGG/Opus.

    Raises:
        TTSError: the bytes are not audio libsndfile can read.
    """
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise TTSError(f"engine returned unreadable audio: {exc}") from exc
    return encode_ogg_opus(np.asarray(audio, dtype=np.float32), int(rate), target_rate=target_rate)
