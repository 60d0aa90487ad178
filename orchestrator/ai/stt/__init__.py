"""Speech to text for voice messages: OpenAI-compatible ``/audio/transcriptions`` or Gemini."""

from orchestrator.ai.stt.base import STTBackend, STTError
from orchestrator.ai.stt.gemini import GeminiSTTBackend
from orchestrator.ai.stt.openai_compat import OpenAISTTBackend

__all__ = ["GeminiSTTBackend", "OpenAISTTBackend", "STTBackend", "STTError"]
