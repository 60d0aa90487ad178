"""The admin UI's helpers behind issue 12's fixes: the Logs view's line parsing (secrets masked
everywhere, the raw JSON kept), plain-language error messages and select labels."""

from __future__ import annotations

import json

from admin_ui.api_client import parse_errors
from admin_ui.channels import UiChannel
from admin_ui.common import log_line
from admin_ui.forms import TABS, fields_for

SECRET = "EAAGm0PX4ZCpsBAKZAZBsecretvalue"


def test_a_json_log_line_becomes_time_level_message_fields_and_raw_json() -> None:
    entry = {
        "ts": "2026-12-02T19:00:01.234+00:00",
        "level": "WARNING",
        "logger": "shared.botkit.outbox",
        "msg": "send failed",
        "bot_id": "shop",
        "request_id": "abc123",
        "to": "+15550001111",
        "attempt": 3,
    }
    line = log_line(json.dumps(entry))
    assert line["ts"] == "19:00:01.234"
    assert line["date"] == "2026-12-02"
    assert line["level"] == "WARNING"
    assert line["msg"] == "send failed"
    assert line["fields"] == [("request_id", "abc123"), ("to", "+15550001111"), ("attempt", "3")]
    assert json.loads(line["raw"]) == entry  # the whole entry, one click away


def test_secrets_never_reach_the_logs_view() -> None:
    entry = {
        "ts": "2026-12-02T19:00:01.234+00:00",
        "level": "ERROR",
        "msg": f"Graph refused Bearer {SECRET} (access_token={SECRET})",
        "access_token": SECRET,
        "headers": {"Authorization": f"Bearer {SECRET}", "X-App-Secret": SECRET},
        "max_tokens": 512,
    }
    line = log_line(json.dumps(entry))
    assert SECRET not in json.dumps(line)
    assert json.loads(line["raw"])["max_tokens"] == 512  # a count is not a secret
    assert json.loads(line["raw"])["access_token"] == "****"
    plain = log_line(f"starting with password={SECRET} and more")
    assert SECRET not in json.dumps(plain)
    assert plain["raw"] == ""


def test_a_pattern_error_is_told_without_the_regular_expression() -> None:
    detail = {
        "detail": [
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "graph_api_version"],
                "msg": "String should match pattern '^v\\d+\\.\\d+$'",
            }
        ]
    }
    fields, _ = parse_errors(422, detail)
    assert "pattern" not in fields["graph_api_version"]
    assert "\\d" not in fields["graph_api_version"]
    assert "expected way" in fields["graph_api_version"]


def test_labels_and_help_are_plain_language() -> None:
    jargon = ("BSUID", "bsuid", "extractive", "Parameters (JSON)", "seed 004", "E.164",
              "FLOTILLA_", "LLM backend")  # fmt: skip
    whatsapp = UiChannel(
        kind="whatsapp",
        label="WhatsApp",
        identity_schemes=("phone", "bsuid", "parent_bsuid", "username"),
    )
    for slug, _label, _form in TABS:
        for f in whatsapp.explain(fields_for(slug)):
            shown = " ".join([f.label, f.help, *(f.option_label(o) for o in f.options)])
            for word in jargon:
                assert word not in shown, (slug, f.name, word)
    (backend,) = [f for f in fields_for("ai") if f.name == "llm_backend"]
    assert backend.option_label("extractive") == "Answer from documents (offline)"
    assert backend.option_label("cloud:openrouter") == "Cloud AI provider “openrouter”"
