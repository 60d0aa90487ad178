"""scripts/migrate_whatsapp.py: seed-004 rows go through the admin API's instance schema.

The seed-004 panel stored ``llm_params`` as JSON text, the access lists as JSON text or a
comma-separated string and booleans as 0/1. Imported as they were, a bot would get a string where
it expects a dict or a list (an access list of one entry ``'["+7 900 …"]'`` that matches
nobody).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session

from orchestrator.db import make_engine, migrate
from orchestrator.models import BotInstance
from orchestrator.security import SecretBox
from orchestrator.settings import Settings
from shared.funnel import default_funnel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "migrate_whatsapp", REPO / "scripts" / "migrate_whatsapp.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["migrate_whatsapp"] = module
    spec.loader.exec_module(module)
    return module


#: The seed-004 panel's table (every configuration field, as it stored them).
LEGACY_DDL = (
    "CREATE TABLE whatsapp_instances (id TEXT PRIMARY KEY, name TEXT, phone_number_id TEXT, "
    "waba_id TEXT, access_token TEXT, verify_token TEXT, app_secret TEXT, webhook_port INTEGER, "
    "enabled INTEGER, auto_start INTEGER, llm_backend TEXT, system_prompt TEXT, "
    "llm_params TEXT, tts_enabled INTEGER, tts_engine TEXT, tts_voice TEXT, tts_preset TEXT, "
    "allowed_phones TEXT, blocked_phones TEXT, rate_limit_count INTEGER, "
    "rate_limit_hours REAL, owner_id INTEGER)"
)


def legacy_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "old-bot",
        "name": "Old Bot",
        "phone_number_id": "111",
        "waba_id": "222",
        "access_token": "legacy-SECRET-token",
        "verify_token": "vt",
        "app_secret": "as",
        "webhook_port": 8003,
        "enabled": 1,
        "auto_start": 0,
        "llm_backend": "vllm",
        "system_prompt": "hello",
        "llm_params": '{"temperature": 0.3, "max_tokens": 256, "top_p": 0.9}',
        "tts_enabled": 1,
        "tts_engine": "xtts",
        "tts_voice": "anna",
        "tts_preset": "",
        "allowed_phones": '["+7 (900) 123-45-67", "BR.1502576394655843"]',
        "blocked_phones": "79001112233, +7 900 111-22-44",
        "rate_limit_count": 5,
        "rate_limit_hours": 5.0,
        "owner_id": None,
    }
    row.update(overrides)
    return row


def test_json_and_list_text_become_the_schema_types(script: ModuleType) -> None:
    values = script.legacy_values(legacy_row())
    assert values["llm_params"] == {"temperature": 0.3, "max_tokens": 256, "top_p": 0.9}
    assert values["allowed_phones"] == ["+79001234567", "BR.1502576394655843"]
    assert values["blocked_phones"] == ["+79001112233", "+79001112244"]
    assert values["tts_enabled"] is True
    assert values["enabled"] is True
    assert values["auto_start"] is False
    assert values["webhook_port"] == 8003
    # Blank text is "not set", not an error; unknown columns are ignored.
    blank = script.legacy_values(legacy_row(llm_params="", blocked_phones="", legacy_x="?"))
    assert "llm_params" not in blank
    assert blank["blocked_phones"] == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("llm_params", "{temperature: 0.3", "llm_params"),
        ("llm_params", '{"temperature": 9}', "llm_params.temperature"),
        ("llm_params", '{"temprature": 0.3}', "llm_params.temprature"),
        ("allowed_phones", '["not a phone"]', "allowed_phones"),
        ("tts_engine", "espeak", "tts_engine"),
        ("webhook_port", 80, "webhook_port"),
    ],
)
def test_a_value_the_api_refuses_is_refused_with_its_field(
    script: ModuleType, field: str, value: Any, named: str
) -> None:
    with pytest.raises(script.LegacyRowError, match=named.replace(".", r"\.")):
        script.legacy_values(legacy_row(**{field: value}))


def _legacy_db(path: Path, rows: list[dict[str, Any]]) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text(LEGACY_DDL))
        for row in rows:
            cols = ", ".join(row)
            marks = ", ".join(f":{k}" for k in row)
            conn.execute(text(f"INSERT INTO whatsapp_instances ({cols}) VALUES ({marks})"), row)  # noqa: S608
    engine.dispose()


def _settings(tmp_path: Path, db: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{db}", data_dir=tmp_path / "d", secret_key="k" * 40)


def test_import_stores_converted_values_and_drops_the_legacy_table(
    script: ModuleType, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    _legacy_db(db, [legacy_row()])
    settings = _settings(tmp_path, db)
    migrate(settings.database_url)
    assert script.import_legacy(settings) == (1, [])
    engine = make_engine(settings.database_url)
    try:
        assert script.LEGACY not in inspect(engine).get_table_names()
        with Session(engine) as session:
            bot = session.get(BotInstance, "old-bot")
            assert bot is not None
            config = dict(bot.config)
            assert config["llm_params"] == {"temperature": 0.3, "max_tokens": 256, "top_p": 0.9}
            assert config["allowed_phones"] == ["+79001234567", "BR.1502576394655843"]
            assert config["blocked_phones"] == ["+79001112233", "+79001112244"]
            assert config["tts_enabled"] is True
            assert config["tts_engine"] == "xtts"
            assert "access_token" not in config
            secrets = SecretBox(settings.resolved_secret_key()).decrypt(bot.secrets_enc)
            assert secrets["access_token"] == "legacy-SECRET-token"
            assert "legacy-SECRET-token" not in json.dumps(config)
            # a seed-004 bot ran the sales funnel as the default: it keeps it, explicitly
            assert config["funnel"] == default_funnel().to_dict()
            assert config["template"] == "sales"
    finally:
        engine.dispose()


def test_a_bad_row_is_reported_and_kept_while_good_rows_are_imported(
    script: ModuleType, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    _legacy_db(
        db,
        [
            legacy_row(),
            legacy_row(id="broken", name="Broken", webhook_port=8004, llm_params="{oops"),
        ],
    )
    settings = _settings(tmp_path, db)
    migrate(settings.database_url)
    added, errors = script.import_legacy(settings)
    assert added == 1
    assert len(errors) == 1
    assert "'broken'" in errors[0]
    assert "llm_params" in errors[0]
    engine = make_engine(settings.database_url)
    try:
        assert script.LEGACY in inspect(engine).get_table_names()  # nothing lost
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {script.LEGACY} SET llm_params = NULL WHERE id = 'broken'")  # noqa: S608
            )
    finally:
        engine.dispose()
    # Fixed and run again: the rest is imported, the first row not twice.
    assert script.import_legacy(settings) == (1, [])


def test_a_legacy_port_outside_the_bot_range_is_not_kept(
    script: ModuleType, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    _legacy_db(
        db,
        [
            legacy_row(),  # seed 004's own port 8003: below the default range 8100-8999
            legacy_row(id="in-range", name="In range", webhook_port=8500),
        ],
    )
    settings = _settings(tmp_path, db)
    migrate(settings.database_url)
    assert script.import_legacy(settings) == (2, [])
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            old = session.get(BotInstance, "old-bot")
            kept = session.get(BotInstance, "in-range")
            assert old is not None
            assert kept is not None
            assert old.webhook_port is None  # allocated from the range when it starts
            assert kept.webhook_port == 8500
    finally:
        engine.dispose()
