"""The channel registry (shared/channels/registry.py): the shipped manifests, what derives from
them, and the plugin hook."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shared.channels import registry
from shared.channels.registry import Capabilities, ChannelManifest, ConfigField

REPO = Path(__file__).resolve().parents[2]


def _manifest(**overrides: object) -> ChannelManifest:
    values: dict[str, object] = {
        "kind": "pager",
        "label": "Pager",
        "module": "pager_bot",
        "fields": (ConfigField("pager_key", "str", "", secret=True),),
        "identity_schemes": ("pager",),
        "capabilities": Capabilities(),
        "public_routes": {"/webhook": ("POST",)},
    }
    values.update(overrides)
    return ChannelManifest(**values)  # type: ignore[arg-type]


def test_shipped_kinds_in_order() -> None:
    assert registry.kinds()[:3] == ("whatsapp", "sms", "telegram")
    assert [m.module for m in registry.manifests()[:3]] == [
        "whatsapp_bot",
        "sms_bot",
        "telegram_bot",
    ]


def test_manifests_match_what_the_channels_render() -> None:
    from sms_bot import render as sms_render
    from telegram_bot import render as tg_render
    from whatsapp_bot import render as wa_render

    wa = registry.get("whatsapp").capabilities
    assert (wa.max_buttons, wa.max_text) == (wa_render.BUTTONS_MAX, wa_render.TEXT_MAX)
    assert wa.customer_service_window == timedelta(hours=24)
    assert registry.get("sms").capabilities.max_text == sms_render.BODY_MAX
    assert registry.get("telegram").capabilities.max_text == tg_render.TEXT_MAX


def test_public_routes_are_the_bots_own_routes() -> None:
    """The manifest's routes are exactly the aiohttp routes each channel serves."""
    from sms_bot.channel import SmsChannel
    from telegram_bot.channel import TelegramChannel
    from whatsapp_bot.channel import WhatsAppChannel

    for spec in (WhatsAppChannel(), SmsChannel(), TelegramChannel()):
        served: dict[str, set[str]] = {}
        for route in spec.routes(None):  # type: ignore[arg-type] - handlers are not called
            served.setdefault(route.path, set()).add(route.method)  # type: ignore[attr-defined]
        declared = {p: set(m) for p, m in registry.get(spec.kind).public_routes.items()}
        assert served == declared, spec.kind


def test_every_shipped_field_is_an_instance_api_field_with_its_limits() -> None:
    from orchestrator.schemas import CHANNEL_FIELDS, SECRET_FIELDS, InstanceFields

    for manifest in registry.manifests()[:3]:
        for field in manifest.fields:
            info = InstanceFields.model_fields.get(field.name)
            assert info is not None, field.name
            assert field.label, field.name
            assert field.help, field.name
            lengths = [m.max_length for m in info.metadata if hasattr(m, "max_length")]
            if field.max_length is not None and lengths:
                assert lengths == [field.max_length], field.name
        assert SECRET_FIELDS[manifest.kind] == manifest.secret_fields
        assert CHANNEL_FIELDS[manifest.kind] == manifest.defaults


def test_secret_fields_and_defaults() -> None:
    assert registry.secret_fields("whatsapp") == ("access_token", "verify_token", "app_secret")
    assert registry.secret_fields("sms") == ("auth_token",)
    assert registry.get("telegram").defaults == {
        "telegram_api_base_url": "https://api.telegram.org",
        "telegram_set_webhook": True,
    }
    with pytest.raises(KeyError):
        registry.get("nochat")
    with pytest.raises(KeyError):
        registry.secret_fields("nochat")


def test_db_filename_rule() -> None:
    from shared.store.files import bot_db_filename

    assert bot_db_filename("whatsapp", "a") == "wa_sales_a.db"
    assert bot_db_filename("sms", "a") == "sms_bot_a.db"
    assert bot_db_filename("gone", "a") == "gone_bot_a.db"  # a plugin no longer loaded


def test_sandbox_values_fill_the_placeholders() -> None:
    values = registry.sandbox_values("whatsapp", "http://127.0.0.1:9/")
    assert values["graph_api_base_url"] == "http://127.0.0.1:9/graph"
    assert values["phone_number_id"].startswith("1")
    assert values["phone_number_id"][1:].isdigit()
    assert len(values["phone_number_id"]) == 15
    assert values["access_token"].startswith("sandbox-")
    assert values != registry.sandbox_values("whatsapp", "http://127.0.0.1:9")  # random parts
    # a sandbox bot must not refuse every webhook: its signature secrets are generated too
    assert values["app_secret"].startswith("sandbox-")
    assert values["verify_token"].startswith("sandbox-")
    assert values["app_secret"] != values["access_token"]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"kind": "Bad Kind"}, "kind must be"),
        ({"module": "not a module"}, "is not a module name"),
        ({"fields": (ConfigField("name", "str", ""),)}, "field name 'name'"),
        ({"fields": (ConfigField("a", "str", ""), ConfigField("a", "str", ""))}, "twice"),
        ({"fields": (ConfigField("a", "float", 0),)}, "unknown type"),  # type: ignore[arg-type]
        ({"fields": (ConfigField("a", "str", "x", secret=True),)}, "must default to ''"),
        ({"public_routes": {"/control/health": ("GET",)}}, "outside /control"),
        ({"public_routes": {"webhook": ("POST",)}}, "absolute path"),
        ({"public_routes": {"/webhook": ()}}, "no methods"),
        ({"simulator": "carousel"}, "simulator"),
        ({"db_filename": "../x_{id}.db"}, "db_filename"),
        ({"db_filename": "fixed.db"}, "db_filename"),
    ],
)
def test_a_bad_manifest_is_refused(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match="channel manifest") as exc:
        _manifest(**overrides)
    assert problem in str(exc.value)


def test_register_twice_same_is_a_no_op_another_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_manifest(kind="whatsapp"))
    assert registry.register(registry.get("sms")) is registry.get("sms")


def test_load_plugins_imports_the_named_modules_in_a_fresh_process() -> None:
    """``FLOTILLA_CHANNEL_PLUGINS`` is the only thing that adds the test's webchat kind; a
    module that does not exist is an error, not a silently missing channel."""
    code = (
        "from shared.channels import registry\n"
        "assert 'webchat' not in registry.kinds()\n"
        "print(registry.load_plugins())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for plugins, expect in (
        (" tests.support.webchat , ", "'webchat'"),
        ("", "('whatsapp', 'sms', 'telegram')"),
    ):
        env["FLOTILLA_CHANNEL_PLUGINS"] = plugins
        res = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", code],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert expect in res.stdout
    env["FLOTILLA_CHANNEL_PLUGINS"] = "tests.support.no_such_channel"
    res = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0
    assert "no_such_channel" in res.stderr


def test_the_plugin_env_var_reaches_bots_and_secrets_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.supervisor.spawner import SpawnSpec, bot_safe_environ

    monkeypatch.setenv("FLOTILLA_CHANNEL_PLUGINS", "tests.support.webchat")
    monkeypatch.setenv("FLOTILLA_SECRET_KEY", "s" * 40)
    env = bot_safe_environ()
    assert env["FLOTILLA_CHANNEL_PLUGINS"] == "tests.support.webchat"
    assert "FLOTILLA_SECRET_KEY" not in env
    spec = SpawnSpec(instance_id="a", kind="whatsapp", env={}, log_path=Path("x"))
    assert spec.command()[1:] == ["-m", "whatsapp_bot"]
