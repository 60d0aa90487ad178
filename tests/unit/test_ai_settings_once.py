"""AI settings are declared once (``AISettings``, its own ``FLOTILLA_AI_*`` settings) and the
environment variable names stay what they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.ai.config import AISettings
from orchestrator.settings import Settings


def test_the_orchestrator_settings_do_not_repeat_the_ai_fields() -> None:
    assert [name for name in Settings.model_fields if name.startswith("ai_")] == []
    assert Settings.model_fields["ai"].annotation is AISettings


def test_every_ai_field_is_read_from_its_flotilla_ai_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOTILLA_AI_VLLM_MODEL", "served-model")
    monkeypatch.setenv("FLOTILLA_AI_MAX_CHUNKS", "42")
    monkeypatch.setenv("FLOTILLA_AI_PIPER_VOICES_DIR", str(tmp_path))
    monkeypatch.setenv("FLOTILLA_AI_STT_BACKEND", "")  # empty = unset
    ai = Settings(data_dir=tmp_path / "data").ai_settings()
    assert (ai.vllm_model, ai.max_chunks, ai.piper_voices_dir) == ("served-model", 42, tmp_path)
    assert ai.stt_backend is None
    assert ai.data_dir == tmp_path / "data"
    assert ai.kb_dir == tmp_path / "data" / "kb"


def test_ai_keywords_on_settings_still_set_the_ai_fields(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ai_max_upload_bytes=1234, ai_gemini_api_key="")
    assert settings.ai.max_upload_bytes == 1234
    assert settings.ai_settings().gemini_api_key is None
    with pytest.raises(ValueError, match="not both"):
        Settings(ai=AISettings(), ai_max_chunks=3)
