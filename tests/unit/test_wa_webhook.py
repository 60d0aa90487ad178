"""WhatsApp webhook checks: signature, JSON, subscription challenge."""

from __future__ import annotations

import pytest

from whatsapp_bot.webhook import (
    WebhookError,
    decode_json,
    sign,
    verify_challenge,
    verify_signature,
)

SECRET = "app-secret-123"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_valid_signature_passes() -> None:
    verify_signature(BODY, sign(BODY, SECRET), SECRET)


def test_missing_signature_is_401() -> None:
    with pytest.raises(WebhookError) as info:
        verify_signature(BODY, None, SECRET)
    assert info.value.status == 401


@pytest.mark.parametrize(
    "header",
    [
        sign(BODY, "another-secret"),
        sign(BODY + b" ", SECRET),
        "sha256=deadbeef",
        "garbage",
        sign(BODY, SECRET).upper(),
    ],
)
def test_wrong_signature_is_403(header: str) -> None:
    with pytest.raises(WebhookError) as info:
        verify_signature(BODY, header, SECRET)
    assert info.value.status == 403


def test_no_app_secret_configured_refuses() -> None:
    with pytest.raises(WebhookError) as info:
        verify_signature(BODY, sign(BODY, ""), "")
    assert info.value.status == 403


def test_signature_is_over_raw_bytes_not_reserialised_json() -> None:
    spaced = b'{ "object" : "whatsapp_business_account", "entry": [] }'
    verify_signature(spaced, sign(spaced, SECRET), SECRET)
    with pytest.raises(WebhookError):
        verify_signature(spaced, sign(BODY, SECRET), SECRET)


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b"{"])
def test_not_json_is_400(raw: bytes) -> None:
    with pytest.raises(WebhookError) as info:
        decode_json(raw)
    assert info.value.status == 400


def test_challenge_echoed_when_token_matches() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert verify_challenge(query, "vt") == "1158201444"


@pytest.mark.parametrize(
    ("query", "token"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}, "vt"),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "vt", "hub.challenge": "1"}, "vt"),
        ({"hub.challenge": "1"}, "vt"),
        ({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}, ""),
    ],
)
def test_challenge_refused_otherwise(query: dict[str, str], token: str) -> None:
    with pytest.raises(WebhookError) as info:
        verify_challenge(query, token)
    assert info.value.status == 403
