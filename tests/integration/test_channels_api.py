"""``GET /admin/channels``: the registry as the admin UI reads it."""

from __future__ import annotations


def test_channels_lists_each_shipped_kind_with_its_form(client, actors) -> None:
    for role in ("admin", "alice", "gary"):
        res = client.get("/admin/channels", headers=actors.headers[role])
        assert res.status_code == 200, res.text
    channels = {c["kind"]: c for c in res.json()}
    assert list(channels)[:3] == ["whatsapp", "sms", "telegram"]
    wa = channels["whatsapp"]
    assert wa["label"] == "WhatsApp"
    assert wa["simulator"] == "buttons"
    assert wa["customer_id_scheme"] == "phone"
    assert "bsuid" in wa["identity_schemes"]
    assert wa["capabilities"]["customer_service_window_s"] == 24 * 3600
    assert wa["capabilities"]["max_buttons"] == 3
    fields = {f["name"]: f for f in wa["fields"]}
    token = fields["access_token"]
    assert token["secret"] is True
    assert token["required"] is True
    assert token["label"]
    assert token["help"]
    assert fields["graph_api_base_url"]["sandbox_default"] == "{sandbox_url}/graph"
    assert fields["graph_api_version"]["default"] == "v21.0"
    assert channels["sms"]["simulator"] == "numbered"
    assert channels["telegram"]["simulator"] == "inline"
    assert channels["telegram"]["customer_id_scheme"] == "telegram_user"
    for channel in channels.values():
        for field in channel["fields"]:
            assert set(field) >= {
                "name",
                "type",
                "default",
                "secret",
                "label",
                "help",
                "required",
                "max_length",
                "sandbox_default",
            }


def test_channels_needs_a_signed_in_user(client) -> None:
    assert client.get("/admin/channels").status_code == 401
