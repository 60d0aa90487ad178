"""Funnel templates over the API: list, preview, create a bot from one (or by default), keep the
business profile; bad ids, oversized values, bad time zones and other owners are refused."""

from __future__ import annotations

import json

from sqlmodel import Session

from orchestrator.models import BotInstance
from shared.funnel import default_funnel

BASE = "/admin/whatsapp/instances"
SHOP = {
    "name": "Maple Leaf Books",
    "about": "A second-hand bookshop on Harbour Street.",
    "hours": "Tue–Sun 10:00–18:00",
    "timezone": "America/Halifax",
    "language": "en",
    "currency": "CAD",
    "contact": "hello@mapleleaf.example",
}


def test_list_and_preview(client, actors) -> None:
    for who in ("admin", "alice", "gary"):
        res = client.get("/admin/templates", headers=actors.headers[who])
        assert res.status_code == 200, res.text
        assert [t["id"] for t in res.json()][:3] == ["documents", "leads", "sales"]
    ru = client.get("/admin/templates?language=ru", headers=actors.headers["alice"]).json()
    assert ru[0]["title"].startswith("Отвечать")
    res = client.post(
        "/admin/templates/documents/preview",
        json={"business": SHOP},
        headers=actors.headers["gary"],  # a preview changes nothing: guests may look
    )
    assert res.status_code == 200, res.text
    funnel = res.json()["funnel"]
    assert "Maple Leaf Books" in funnel["texts"]["welcome"]
    assert "Private AI" not in json.dumps(funnel)
    assert client.get("/admin/templates").status_code == 401


def test_bad_preview_input(client, actors) -> None:
    h = actors.headers["alice"]
    res = client.post("/admin/templates/nope/preview", json={}, headers=h)
    assert res.status_code == 404
    assert "unknown template" in res.json()["detail"]
    assert client.post("/admin/templates/..%2Fsales/preview", json={}, headers=h).status_code in (
        404,
        422,
    )
    for bad in (
        {"name": "x" * 81},
        {"about": "x" * 100_000},
        {"timezone": "Mars/Olympus"},
        {"language": "de"},
        {"owner": "me"},
    ):
        res = client.post("/admin/templates/documents/preview", json={"business": bad}, headers=h)
        assert res.status_code == 422, (bad, res.text)
        assert "detail" in res.json()
    res = client.post(
        "/admin/templates/documents/preview",
        json={"business": {"timezone": "Mars/Olympus"}},
        headers=h,
    )
    assert "is not a time zone" in res.text
    huge = {"business": {"about": "x" * (2 * 1024 * 1024)}}  # past the 1 MiB body limit
    res = client.post("/admin/templates/documents/preview", json=huge, headers=h)
    assert res.status_code == 413


def test_a_bot_without_a_funnel_answers_for_itself(client, actors, wa_payload) -> None:
    res = client.post(BASE, json=wa_payload(name="Corner Café"), headers=actors.headers["alice"])
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["template"] == "documents"
    assert body["business"]["name"] == "Corner Café"
    assert "Corner Café" in body["funnel"]["texts"]["welcome"]
    text = json.dumps(body["funnel"], ensure_ascii=False)
    for trace in ("Private AI", "₽", "YooMoney", "your-org"):
        assert trace not in text
    # an explicit null at creation is the same: no new bot speaks for the seed business
    res = client.post(
        BASE, json=wa_payload(name="Second", funnel=None), headers=actors.headers["alice"]
    )
    assert res.json()["template"] == "documents"


def test_create_from_a_template_with_a_business_profile(client, actors, wa_payload) -> None:
    h = actors.headers["alice"]
    res = client.post(
        BASE, json=wa_payload(name="Books bot", template="leads", business=SHOP), headers=h
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["template"] == "leads"
    assert body["business"]["timezone"] == "America/Halifax"
    assert "Maple Leaf Books" in body["funnel"]["texts"]["welcome"]
    assert [s["id"] for s in body["funnel"]["discovery"]["steps"]][0] == "lead_need"
    sales = client.post(BASE, json=wa_payload(name="Seller", template="sales"), headers=h).json()
    assert sales["funnel"] == default_funnel().to_dict()
    # the profile is edited on its own; the funnel changes only when a template is applied
    bot = body["id"]
    res = client.put(
        f"{BASE}/{bot}", json={"business": {**SHOP, "hours": "Daily 9–21"}}, headers=h
    )
    assert res.status_code == 200, res.text
    assert res.json()["business"]["hours"] == "Daily 9–21"
    assert "Daily 9–21" not in json.dumps(res.json()["funnel"], ensure_ascii=False)
    res = client.put(f"{BASE}/{bot}", json={"template": "documents"}, headers=h)
    assert res.status_code == 200, res.text
    assert "Daily 9–21" in res.json()["funnel"]["manager"]["text"]
    assert res.json()["template"] == "documents"


def test_bad_create_input(client, actors, wa_payload) -> None:
    h = actors.headers["alice"]
    cases = [
        ({"template": "nope"}, "template"),
        ({"template": "x" * 41}, "template"),
        ({"business": {"timezone": "Europe/Atlantis"}}, "business"),
        ({"business": {"name": "x" * 5000}}, "business"),
        ({"business": {"language": "klingon"}}, "business"),
        ({"template": "documents", "funnel": default_funnel().to_dict()}, "template"),
    ]
    for extra, field in cases:
        res = client.post(BASE, json=wa_payload(**extra), headers=h)
        assert res.status_code == 422, (extra, res.text)
        assert field in json.dumps(res.json()["detail"]), res.text
    assert client.get(BASE, headers=h).json() == []  # nothing half-created


def test_other_owner_and_guest_cannot_apply_a_template(client, actors, wa_payload) -> None:
    bot = client.post(BASE, json=wa_payload(), headers=actors.headers["alice"]).json()["id"]
    res = client.put(f"{BASE}/{bot}", json={"template": "sales"}, headers=actors.headers["bob"])
    assert res.status_code == 404
    res = client.put(f"{BASE}/{bot}", json={"template": "sales"}, headers=actors.headers["gary"])
    assert res.status_code == 403
    res = client.post(BASE, json=wa_payload(template="documents"), headers=actors.headers["gary"])
    assert res.status_code == 403
    got = client.get(f"{BASE}/{bot}", headers=actors.headers["alice"]).json()
    assert got["template"] == "documents"


def test_an_existing_bot_with_a_null_funnel_keeps_it(client, actors, wa_payload) -> None:
    h = actors.headers["admin"]
    bot = client.post(BASE, json=wa_payload(), headers=h).json()["id"]
    with Session(client.app.state.engine) as session:  # a bot from before templates
        row = session.get(BotInstance, bot)
        assert row is not None
        row.config = {k: v for k, v in row.config.items() if k not in ("template", "business")}
        row.config = {**row.config, "funnel": None}
        session.add(row)
        session.commit()
    res = client.put(f"{BASE}/{bot}", json={"persona": "calm"}, headers=h)
    assert res.status_code == 200, res.text
    assert res.json()["funnel"] is None
    assert res.json()["template"] is None


def test_applying_a_template_again_keeps_the_bots_own_faq(client, actors, wa_payload) -> None:
    h = actors.headers["alice"]
    funnel = client.post(
        "/admin/templates/documents/preview", json={"business": SHOP}, headers=h
    ).json()["funnel"]
    funnel["faq"] = {
        "menu_text": "*Questions*",
        "section_text": "*{section}*",
        "sections": [
            {
                "id": "shop",
                "title": "The shop",
                "items": [
                    {
                        "key": "parking",
                        "title": "Parking?",
                        "question": "Parking?",
                        "answer": "Behind the shop.",
                    }
                ],
            }
        ],
    }
    bot = client.post(BASE, json=wa_payload(funnel=funnel), headers=h).json()
    assert bot["template"] is None  # an own funnel, not a template
    res = client.put(
        f"{BASE}/{bot['id']}", json={"template": "documents", "business": SHOP}, headers=h
    )
    assert res.status_code == 200, res.text
    assert res.json()["funnel"]["faq"]["sections"][0]["id"] == "shop"
    assert "faq:menu" in [b["action"] for b in res.json()["funnel"]["welcome"]]
