"""Parsing recorded-style Cloud API payloads from tests/data/whatsapp/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from whatsapp_bot.parse import PayloadError, parse_payload

DATA = Path(__file__).resolve().parents[1] / "data" / "whatsapp"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_every_payload_file_parses() -> None:
    files = sorted(DATA.glob("*.json"))
    assert len(files) >= 9
    for path in files:
        messages, statuses = parse_payload(json.loads(path.read_text()))
        for message in messages:
            assert message.provider_message_id.startswith("wamid.")
            assert message.customer.phone or message.customer.bsuid
        for status in statuses:
            assert status.status in {"sent", "delivered", "read", "failed"}


def test_text_with_bsuid_and_phone() -> None:
    (message,), statuses = parse_payload(load("text.json"))
    assert statuses == []
    assert message.kind == "text"
    assert message.text == "Does it come in another color?"
    assert message.customer.phone == "+16505551234"
    assert message.customer.bsuid == "US.13491208655302741918"
    assert message.customer.profile_name == "Sheena Nelson"
    assert message.timestamp == 1749416383


def test_button_reply_payload_is_the_reply_id() -> None:
    (message,), _ = parse_payload(load("button_reply.json"))
    assert message.kind == "button"
    assert message.payload == "sales:start_quiz"
    assert message.text == "Take the quiz"
    assert message.context_message_id
    assert message.context_message_id.startswith("wamid.")


def test_list_reply() -> None:
    (message,), _ = parse_payload(load("list_reply.json"))
    assert (message.kind, message.payload, message.text) == ("list", "faq:cat_product", "Product")


def test_voice_note_and_image() -> None:
    (audio,), _ = parse_payload(load("audio.json"))
    assert audio.kind == "audio"
    assert audio.media_id == "1003383421387256"
    assert audio.media_mime
    assert audio.media_mime.startswith("audio/ogg")
    (image,), _ = parse_payload(load("image.json"))
    assert (image.kind, image.text, image.media_id) == (
        "image",
        "My current GPU rig",
        "1479537139650973",
    )


def test_statuses_in_payload_order() -> None:
    messages, statuses = parse_payload(load("statuses.json"))
    assert messages == []
    assert [s.status for s in statuses] == ["sent", "read", "delivered"]


def test_failed_status_carries_code_and_details() -> None:
    _, (status,) = parse_payload(load("status_failed.json"))
    assert status.status == "failed"
    assert status.error_code == 131047
    assert status.error
    assert "24 hours" in status.error


def test_batched_payload_keeps_every_message_and_sender() -> None:
    messages, statuses = parse_payload(load("batched.json"))
    # The reaction is an event type the bot ignores; five real messages remain.
    assert [m.kind for m in messages] == ["text", "text", "location", "document", "contacts"]
    senders = [m.customer.phone for m in messages]
    assert senders == [
        "+5511987654321",
        "+79161234567",
        "+5511987654321",
        "+79161234567",
        "+79161234567",
    ]
    assert messages[0].customer.bsuid == "BR.1502576394655843"
    assert messages[1].customer.profile_name == "Ivan Petrov"
    assert messages[1].customer.bsuid is None
    assert messages[2].location == {
        "latitude": -23.5505,
        "longitude": -46.6333,
        "name": "Escritório",
        "address": "Av. Paulista, 1000",
    }
    assert messages[4].text == "Olga Ivanova"
    assert [s.status for s in statuses] == ["delivered"]


def test_username_customer_without_phone_is_keyed_by_bsuid() -> None:
    (message,), _ = parse_payload(load("username_bsuid.json"))
    customer = message.customer
    assert customer.phone is None
    assert customer.bsuid == "BR.1502576394655843"
    assert customer.parent_bsuid == "BR.ENT.11815799212886844830"
    assert customer.username == "@maria.lopez"
    assert customer.address() == "BR.1502576394655843"


def test_unknown_field_is_ignored_not_an_error() -> None:
    assert parse_payload(load("unknown_field.json")) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"messages": [{"type": "text", "from": "1555"}]},
                        }
                    ]
                }
            ],
        },
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [
                                    {"id": "wamid.x", "type": "text", "text": {"body": "hi"}}
                                ]
                            },
                        }
                    ]
                }
            ],
        },
    ],
)
def test_uninterpretable_payloads_raise(body: Any) -> None:
    with pytest.raises(PayloadError):
        parse_payload(body)
