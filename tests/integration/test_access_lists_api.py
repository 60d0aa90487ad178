"""Access lists take the customer ids the bot's channel gives (its manifest's
``identity_schemes``): Telegram user ids (bare or ``telegram_user:``), ``@usernames`` and phones
on a Telegram bot; phones and BSUIDs on WhatsApp; phones only on SMS. Anything else is a 422 at
the entry, saying which ids the bot takes."""

from __future__ import annotations

from typing import Any

import pytest


def post(client: Any, actors: Any, kind: str, **fields: Any) -> Any:
    return client.post(
        f"/admin/{kind}/instances",
        json={"name": f"{kind} access", **fields},
        headers=actors.headers["admin"],
    )


def test_a_telegram_bot_takes_telegram_user_ids_usernames_and_phones(client, actors) -> None:
    res = post(
        client,
        actors,
        "telegram",
        blocked_phones=["telegram_user:12345", "67890", "@Spammer", "+1 (202) 555-0143"],
        allowed_phones=["telegram_user: 521234567"],
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["blocked_phones"] == [
        "telegram_user:12345",
        "67890",
        "@Spammer",
        "+12025550143",
    ]
    assert body["allowed_phones"] == ["telegram_user:521234567"]
    # PUT checks the same way.
    bot_id = body["id"]
    res = client.put(
        f"/admin/telegram/instances/{bot_id}",
        json={"blocked_phones": ["username:@bob"]},
        headers=actors.headers["admin"],
    )
    assert res.status_code == 200, res.text
    assert res.json()["blocked_phones"] == ["username:@bob"]


@pytest.mark.parametrize(
    ("kind", "entry", "says"),
    [
        ("telegram", "BR.1502576394655843", "this Telegram bot takes"),  # a WhatsApp BSUID
        ("telegram", "telegram_user:abc", "not a valid telegram user id"),
        ("telegram", "bsuid:BR.1502576394655843", "Telegram customers have no bsuid ids"),
        ("whatsapp", "telegram_user:12345", "WhatsApp customers have no telegram_user ids"),
        ("sms", "12345", "this SMS bot takes phone numbers"),
        ("sms", "@bob", "this SMS bot takes phone numbers"),
    ],
)
def test_an_id_the_channel_does_not_give_is_422_at_the_entry(
    client, actors, kind: str, entry: str, says: str
) -> None:
    res = post(client, actors, kind, blocked_phones=["+12025550143", entry])
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == ["body", "blocked_phones", 1]
    assert says in err["msg"]


def test_whatsapp_still_takes_phones_and_bsuids(client, actors) -> None:
    res = post(
        client,
        actors,
        "whatsapp",
        allowed_phones=["+1 (202) 555-0143", "BR.1502576394655843", "bsuid:BR.1502576394655843"],
    )
    assert res.status_code == 201, res.text
    assert res.json()["allowed_phones"] == [
        "+12025550143",
        "BR.1502576394655843",
        "bsuid:BR.1502576394655843",
    ]
