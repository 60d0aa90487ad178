"""Issue 14 items 8 and 9: `llm_history` (earlier messages the LLM sees) and `quote_replies` are
validated bot settings."""

from __future__ import annotations

import pytest

URL = "/admin/whatsapp/instances"


def test_default_is_twenty_and_a_value_in_range_is_kept(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    res = client.post(URL, json=wa_payload(), headers=h)
    assert res.status_code == 201, res.text
    assert res.json()["llm_history"] == 20
    for value in (0, 35, 50):
        res = client.put(f"{URL}/support-bot", json={"llm_history": value}, headers=h)
        assert res.status_code == 200, res.text
        assert res.json()["llm_history"] == value
        assert client.get(f"{URL}/support-bot", headers=h).json()["llm_history"] == value


@pytest.mark.parametrize("value", [-1, 51, 10_000, "lots", 2.5, [20]])
def test_out_of_range_or_not_a_number_is_422(client, actors, wa_payload, value) -> None:
    h = actors.headers["admin"]
    assert client.post(URL, json=wa_payload(), headers=h).status_code == 201
    res = client.put(f"{URL}/support-bot", json={"llm_history": value}, headers=h)
    assert res.status_code == 422, res.text
    assert any("llm_history" in err["loc"] for err in res.json()["detail"])
    assert client.get(f"{URL}/support-bot", headers=h).json()["llm_history"] == 20
    res = client.post(URL, json=wa_payload(name="Other", llm_history=value), headers=h)
    assert res.status_code == 422, res.text


def test_quote_replies_is_a_validated_switch(client, actors, wa_payload) -> None:
    """Issue 14 item 8: the per-bot switch for quoting the customer's message."""
    h = actors.headers["admin"]
    res = client.post(URL, json=wa_payload(), headers=h)
    assert res.json()["quote_replies"] is True
    res = client.put(f"{URL}/support-bot", json={"quote_replies": False}, headers=h)
    assert res.status_code == 200, res.text
    assert client.get(f"{URL}/support-bot", headers=h).json()["quote_replies"] is False
    res = client.put(f"{URL}/support-bot", json={"quote_replies": "sometimes"}, headers=h)
    assert res.status_code == 422, res.text
    assert any("quote_replies" in err["loc"] for err in res.json()["detail"])
