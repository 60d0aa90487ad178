"""Instance API: CRUD, slugs, masking, encryption at rest, validation (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

SECRETS = ("EAAG-test-access-token-SECRET-1111", "verify-SECRET-2222", "appsecret-SECRET-3333")


def test_create_returns_slug_and_masks_secrets(client, actors, wa_payload) -> None:
    res = client.post(
        "/admin/whatsapp/instances", json=wa_payload(), headers=actors.headers["admin"]
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["id"] == "support-bot"
    assert body["kind"] == "whatsapp"
    assert body["access_token"] == "****1111"
    assert body["app_secret"] == "****3333"
    assert body["verify_token"] == "****2222"
    assert body["rate_limit_count"] == 30  # the "everyday" preset, not the seed's 5 per 5 h
    assert body["rate_limit_hours"] == 1
    for secret in SECRETS:
        assert secret not in res.text


def test_slug_collision_gets_suffix(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    ids = [
        client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h).json()["id"]
        for _ in range(3)
    ]
    assert ids == ["support-bot", "support-bot-2", "support-bot-3"]
    other = client.post("/admin/sms/instances", json={"name": "Ünïcode Shop!! 24/7"}, headers=h)
    assert other.json()["id"] == "unicode-shop-24-7"


def test_secrets_masked_in_list_get_update(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h)
    for res in (
        client.get("/admin/whatsapp/instances", headers=h),
        client.get("/admin/whatsapp/instances/support-bot", headers=h),
        client.put("/admin/whatsapp/instances/support-bot", json={"persona": "Kind"}, headers=h),
    ):
        assert res.status_code == 200, res.text
        for secret in SECRETS:
            assert secret not in res.text
        assert "****1111" in res.text


def test_put_with_mask_or_omitted_keeps_secret(client, actors, wa_payload, settings) -> None:
    h = actors.headers["admin"]
    client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h)
    res = client.put(
        "/admin/whatsapp/instances/support-bot",
        json={"access_token": "****1111", "system_prompt": "Be brief"},
        headers=h,
    )
    assert res.status_code == 200
    assert res.json()["system_prompt"] == "Be brief"
    from sqlmodel import Session

    from orchestrator import crud
    from orchestrator.models import BotInstance

    app = client.app
    with Session(app.state.engine) as session:
        inst = session.get(BotInstance, "support-bot")
        revealed = crud.instance_settings(inst, app.state.box, reveal=True)
    assert revealed["access_token"] == SECRETS[0]
    assert revealed["app_secret"] == SECRETS[2]
    # a new value replaces it
    client.put(
        "/admin/whatsapp/instances/support-bot",
        json={"access_token": "EAAG-rotated-token-9999"},
        headers=h,
    )
    with Session(app.state.engine) as session:
        inst = session.get(BotInstance, "support-bot")
        assert crud.instance_settings(inst, app.state.box, reveal=True)["access_token"] == (
            "EAAG-rotated-token-9999"
        )


def test_database_holds_no_secret_in_clear(client, actors, wa_payload, settings) -> None:
    h = actors.headers["admin"]
    client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h)
    client.post(
        "/admin/telegram/instances",
        json={"name": "TG", "bot_token": "123456:TG-SECRET-TOKEN-4444"},
        headers=h,
    )
    url = settings.database_url
    if url.startswith("sqlite"):
        client.app.state.engine.dispose()
        path = url.split("///", 1)[1]
        raw = b""
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as fh:
                    raw += fh.read()
            except FileNotFoundError:
                pass
        assert b"support-bot" in raw  # the row is there ...
        for secret in (*SECRETS, "TG-SECRET-TOKEN-4444"):
            assert secret.encode() not in raw  # ... but no secret in clear
    else:
        from orchestrator.db import normalize_url

        engine = create_engine(normalize_url(url))
        with engine.connect() as conn:
            dump = " ".join(
                str(row) for row in conn.execute(text("SELECT * FROM bot_instances")).all()
            )
        engine.dispose()
        assert "support-bot" in dump
        for secret in (*SECRETS, "TG-SECRET-TOKEN-4444"):
            assert secret not in dump


def test_per_kind_views_are_gone_and_come_back_on_downgrade(
    client, actors, wa_payload, settings
) -> None:
    """Migration 0004 drops 0001's ``{kind}_instances`` views (channels live in the registry);
    its downgrade recreates them over ``bot_instances``, and upgrading drops them again."""
    from alembic import command
    from sqlalchemy import inspect

    from orchestrator.db import alembic_config

    h = actors.headers["admin"]
    client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h)
    client.post("/admin/sms/instances", json={"name": "Texts"}, headers=h)
    views = ("whatsapp_instances", "sms_instances", "telegram_instances")
    engine = create_engine(settings.database_url)
    try:
        assert not set(views) & set(inspect(engine).get_view_names())
        cfg = alembic_config(settings.database_url)
        command.downgrade(cfg, "0003")
        assert set(views) <= set(inspect(engine).get_view_names())
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(text("SELECT id FROM whatsapp_instances")).all()]
            sms = [r[0] for r in conn.execute(text("SELECT id FROM sms_instances")).all()]
        assert ids == ["support-bot"]
        assert sms == ["texts"]
        command.upgrade(cfg, "head")
        assert not set(views) & set(inspect(engine).get_view_names())
        with engine.connect() as conn:
            kinds = sorted(r[0] for r in conn.execute(text("SELECT kind FROM bot_instances")))
        assert kinds == ["sms", "whatsapp"]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_phones", ["+1 555 not a phone"]),
        ("blocked_phones", ["12"]),
        ("webhook_port", 80),
        ("webhook_port", 70000),
        ("llm_backend", "skynet"),
        ("llm_params", {"temperature": "hot"}),
        ("llm_params", {"temperature": 0.5, "top_k": 3}),
        ("rate_limit_count", -1),
        ("graph_api_version", "21"),
        ("name", ""),
        ("tts_preset", "warm"),  # removed: no TTS engine has presets
    ],
)
def test_bad_input_is_422_naming_the_field(client, actors, wa_payload, field, value) -> None:
    res = client.post(
        "/admin/whatsapp/instances",
        json=wa_payload(**{field: value}),
        headers=actors.headers["admin"],
    )
    assert res.status_code == 422, res.text
    locs = [err["loc"] for err in res.json()["detail"]]
    assert any(field in loc for loc in locs), locs


def test_port_taken_is_422(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    assert (
        client.post(
            "/admin/whatsapp/instances", json=wa_payload(webhook_port=8123), headers=h
        ).status_code
        == 201
    )
    res = client.post("/admin/sms/instances", json={"name": "B", "webhook_port": 8123}, headers=h)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "webhook_port"]
    assert "support-bot" in res.json()["detail"][0]["msg"]


def test_phones_normalized_and_bsuid_accepted(client, actors, wa_payload) -> None:
    res = client.post(
        "/admin/whatsapp/instances",
        json=wa_payload(
            allowed_phones=["+1 (202) 555-0143", "BR.1502576394655843"],
            blocked_phones=["+44 20 7946 0958"],
        ),
        headers=actors.headers["admin"],
    )
    assert res.status_code == 201, res.text
    assert res.json()["allowed_phones"] == ["+12025550143", "BR.1502576394655843"]
    assert res.json()["blocked_phones"] == ["+442079460958"]


def test_field_of_another_kind_is_422(client, actors) -> None:
    res = client.post(
        "/admin/sms/instances",
        json={"name": "S", "bot_token": "123:abc"},
        headers=actors.headers["admin"],
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "bot_token"]


def test_malformed_json_is_422_not_500(client, actors) -> None:
    res = client.post(
        "/admin/whatsapp/instances",
        content=b"{not json",
        headers={**actors.headers["admin"], "Content-Type": "application/json"},
    )
    assert res.status_code == 422


def test_delete(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    client.post("/admin/whatsapp/instances", json=wa_payload(), headers=h)
    assert client.delete("/admin/whatsapp/instances/support-bot", headers=h).status_code == 204
    assert client.get("/admin/whatsapp/instances/support-bot", headers=h).status_code == 404


def test_all_kinds_roundtrip(client, actors) -> None:
    h = actors.headers["admin"]
    sms: dict[str, Any] = {
        "name": "Shop SMS",
        "account_sid": "AC" + "1" * 32,
        "auth_token": "twilio-auth-SECRET-5555",
        "from_number": "+1 202 555 0100",
    }
    res = client.post("/admin/sms/instances", json=sms, headers=h)
    assert res.status_code == 201, res.text
    assert res.json()["from_number"] == "+12025550100"
    assert res.json()["auth_token"] == "****5555"
    tg = {
        "name": "Shop TG",
        "bot_token": "123:TG-SECRET-6666",
        "webhook_secret": "hook-SECRET-7777",
    }
    res = client.post("/admin/telegram/instances", json=tg, headers=h)
    assert res.status_code == 201
    assert res.json()["bot_token"] == "****6666"
    assert "telegram_api_base_url" in res.json()
    # an id of another kind is not found under this kind
    assert client.get("/admin/whatsapp/instances/shop-sms", headers=h).status_code == 404
