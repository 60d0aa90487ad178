"""The Twilio sandbox works with the official ``twilio`` SDK, pointed at it by base URL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from shared.sandbox import SandboxThread

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "sandbox-auth-token"


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    # The SDK is synchronous, so the sandbox runs on its own loop in a thread.
    with SandboxThread() as running:
        yield running


@pytest.fixture
def client(sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> Client:
    # Edge/region settings would rewrite the host; make sure none leak in from the environment.
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN)
    twilio.api.base_url = f"{sandbox.url}/twilio"
    return twilio


def sandbox_get(sandbox: SandboxThread, path: str) -> dict:
    response = httpx.get(f"{sandbox.url}/_sandbox/{path}")
    assert response.status_code == 200
    return response.json()


def test_sdk_create_returns_a_queued_message_and_is_recorded(
    sandbox: SandboxThread, client: Client
) -> None:
    message = client.messages.create(to="+48600100200", from_="+15005550006", body="Hello SMS")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.to == "+48600100200"
    assert message.from_ == "+15005550006"
    assert message.body == "Hello SMS"
    assert message.account_sid == ACCOUNT_SID
    assert message.direction == "outbound-api"
    assert message.date_created is not None

    logged = sandbox_get(sandbox, "requests?provider=twilio")["requests"]
    assert len(logged) == 1
    assert logged[0]["method"] == "POST"
    assert logged[0]["path"] == f"/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert logged[0]["form"] == {"To": "+48600100200", "From": "+15005550006", "Body": "Hello SMS"}
    assert logged[0]["status"] == 201
    assert logged[0]["headers"]["Authorization"] == "Basic ***"

    sent = sandbox_get(sandbox, "messages?provider=twilio&to=%2B48600100200")["messages"]
    assert [(m["text"], m["message_id"]) for m in sent] == [("Hello SMS", message.sid)]


def test_sdk_messaging_service_media_and_status_callback(
    sandbox: SandboxThread, client: Client
) -> None:
    message = client.messages.create(
        to="+48600100200",
        messaging_service_sid="MG" + "a" * 32,
        body="Your file",
        media_url=["https://example.invalid/a.jpg", "https://example.invalid/b.jpg"],
        status_callback="http://127.0.0.1:9/status",
    )
    assert message.num_media == "2"
    assert message.messaging_service_sid == "MG" + "a" * 32

    form = sandbox_get(sandbox, "requests")["requests"][0]["form"]
    assert form["MediaUrl"] == ["https://example.invalid/a.jpg", "https://example.invalid/b.jpg"]
    assert form["StatusCallback"] == "http://127.0.0.1:9/status"

    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid
    assert fetched.body == "Your file"


def test_wrong_credentials_are_refused_with_20003(sandbox: SandboxThread) -> None:
    other = Client("AC" + "f" * 32, AUTH_TOKEN)
    other.api.base_url = f"{sandbox.url}/twilio"
    # Credentials of one account used on another account's path.
    with pytest.raises(TwilioRestException) as caught:
        other.api.v2010.accounts(ACCOUNT_SID).messages.create(
            to="+48600100200", from_="+15005550006", body="x"
        )
    assert caught.value.status == 401
    assert caught.value.code == 20003
    assert sandbox_get(sandbox, "messages")["messages"] == []


def test_body_over_1600_characters_is_rejected_with_21617(
    sandbox: SandboxThread, client: Client
) -> None:
    client.messages.create(to="+48600100200", from_="+15005550006", body="b" * 1600)
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+48600100200", from_="+15005550006", body="b" * 1601)
    assert caught.value.status == 400
    assert caught.value.code == 21617
    assert len(sandbox_get(sandbox, "messages")["messages"]) == 1


def test_missing_sender_is_rejected_with_21603(sandbox: SandboxThread, client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+48600100200", body="no sender")
    assert caught.value.code == 21603


def test_429_fault_reaches_the_sdk_and_carries_retry_after(
    sandbox: SandboxThread, client: Client
) -> None:
    spec = {"provider": "twilio", "mode": "429", "retry_after": 2, "count": 2}
    assert httpx.post(f"{sandbox.url}/_sandbox/faults", json=spec).status_code == 201

    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="+48600100200", from_="+15005550006", body="x")
    assert caught.value.status == 429
    assert caught.value.code == 20429

    raw = httpx.post(
        f"{sandbox.url}/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+48600100200", "From": "+15005550006", "Body": "x"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert raw.status_code == 429
    assert raw.headers["Retry-After"] == "2"

    # count=2 is used up: the next send goes through.
    assert client.messages.create(to="+48600100200", from_="+15005550006", body="x").sid
