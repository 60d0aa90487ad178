"""Text to speech: piper in-process, XTTS / OpenVoice over HTTP; output is OGG/Opus."""

from orchestrator.ai.tts.base import TTSBackend, TTSError
from orchestrator.ai.tts.http_engine import HTTPTTSBackend
from orchestrator.ai.tts.ogg import OPUS_RATES, audio_to_ogg_opus, encode_ogg_opus
from orchestrator.ai.tts.piper import PiperBackend

__all__ = [
    "OPUS_RATES",
    "HTTPTTSBackend",
    "PiperBackend",
    "TTSBackend",
    "TTSError",
    "audio_to_ogg_opus",
    "encode_ogg_opus",
]
