"""shared.botkit.public (where providers reach a bot) and shared.botkit.text helpers."""

from __future__ import annotations

from shared.botkit.public import public_base_url, public_url_for
from shared.botkit.text import split_text, strip_bold


def test_instance_public_url_wins_and_a_trailing_webhook_is_dropped() -> None:
    env = {"FLOTILLA_PUBLIC_URL": "https://fleet.example.com"}
    for configured in ("https://sms.example.com/", "https://sms.example.com/webhook"):
        config = {"public_url": configured}
        assert public_base_url(config, kind="sms", instance_id="shop", env=env) == (
            "https://sms.example.com"
        )
    assert public_url_for(
        {"public_url": "https://sms.example.com"}, "/status", kind="sms", instance_id="shop",
        env={},
    ) == "https://sms.example.com/status"


def test_fleet_url_goes_through_the_orchestrator_ingress() -> None:
    env = {"FLOTILLA_PUBLIC_URL": "https://fleet.example.com/"}
    assert public_url_for({}, "webhook", kind="telegram", instance_id="tg", env=env) == (
        "https://fleet.example.com/hooks/telegram/tg/webhook"
    )
    env = {"BOT_PUBLIC_URL": "http://x"}
    assert public_base_url({}, kind="sms", instance_id="s", env=env) == "http://x/hooks/sms/s"


def test_nothing_configured_means_no_public_url() -> None:
    assert public_url_for({}, "/webhook", kind="sms", instance_id="shop", env={}) is None
    assert public_url_for(
        {}, "/webhook", kind="sms", instance_id="", env={"FLOTILLA_PUBLIC_URL": "https://f"}
    ) is None


def test_strip_bold_keeps_arithmetic() -> None:
    assert strip_bold("*Private AI* costs 2 * 3 *k*") == "Private AI costs 2 * 3 k"


def test_split_text_respects_the_limit_at_word_breaks() -> None:
    chunks = split_text("alpha beta gamma delta " * 50, 60)
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks).split() == ("alpha beta gamma delta " * 50).split()
