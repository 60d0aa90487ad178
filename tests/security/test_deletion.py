"""Deletion is deletion (issue 10, findings 5 and 8), on SQLite and PostgreSQL:

* a deleted bot's database, logs and pid file are gone, its id is never given out again, and
  the next bot of the same name (another user's) sees none of the first one's customers;
* ids of deleted knowledge bases and LLM providers are retired too;
* ``/ui/slug`` answers a user the same whether another user holds an id or nobody does;
* deleting a user who still owns bots or knowledge bases is a 409 naming them (was a 500 for a
  knowledge base), and goes through once they are reassigned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from orchestrator import crud
from orchestrator.api.deps import SESSION_COOKIE
from orchestrator.models import RetiredId
from shared.store import BotStore, bot_db_filename
from tests.conftest import Actors

CUSTOMER = "+15550009999"


def _bot_files(client: TestClient, kind: str, bot_id: str) -> dict[str, Path]:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    db = settings.data_dir / bot_db_filename(kind, bot_id)
    return {
        "db": db,
        "wal": db.with_name(db.name + "-wal"),
        "log": settings.logs_dir / f"{kind}_bot_{bot_id}.log",
        "rotated log": settings.logs_dir / f"{kind}_bot_{bot_id}.log.1",
        "pid file": settings.data_dir / "run" / f"{kind}_bot_{bot_id}.json",
    }


def _give_bot_a_customer(client: TestClient, kind: str, bot_id: str) -> dict[str, Path]:
    """What a bot that ran leaves behind: a customer's message in its database, logs, a pid
    file."""
    files = _bot_files(client, kind, bot_id)
    store = BotStore.open(files["db"])
    try:
        store.add_message(direction="in", customer=CUSTOMER, type_="text", text="my address is …")
    finally:
        store.close()
    files["wal"].touch()
    for name in ("log", "rotated log", "pid file"):
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_text(f'{{"msg": "customer {CUSTOMER} wrote"}}\n')
    return files


def test_next_bot_of_the_same_name_sees_nothing_of_a_deleted_one(
    client: TestClient, actors: Actors
) -> None:
    h = actors.headers
    res = client.post("/admin/whatsapp/instances", headers=h["alice"], json={"name": "Shop"})
    assert res.status_code == 201, res.text
    first = res.json()["id"]
    files = _give_bot_a_customer(client, "whatsapp", first)
    convs = client.get(f"/admin/whatsapp/instances/{first}/conversations", headers=h["alice"])
    assert CUSTOMER in convs.text  # the setup is visible

    assert (
        client.delete(f"/admin/whatsapp/instances/{first}", headers=h["alice"]).status_code == 204
    )
    left = sorted(name for name, path in files.items() if path.exists())
    assert left == [], f"files of the deleted bot are still there: {left}"

    res = client.post("/admin/whatsapp/instances", headers=h["bob"], json={"name": "Shop"})
    assert res.status_code == 201, res.text
    second = res.json()["id"]
    assert second != first  # the deleted bot's id is retired
    convs = client.get(f"/admin/whatsapp/instances/{second}/conversations", headers=h["bob"])
    assert convs.status_code == 200
    assert convs.json() == []
    assert CUSTOMER not in convs.text
    # the old id names nothing any more (not even for its old owner)
    got = client.get(f"/admin/whatsapp/instances/{first}/conversations", headers=h["alice"])
    assert got.status_code == 404
    # another kind does not get it either (one id space for all bots)
    res = client.post("/admin/sms/instances", headers=h["bob"], json={"name": "Shop"})
    assert res.status_code == 201
    assert res.json()["id"] not in (first, second)


def test_retired_ids_are_never_handed_out_again(client: TestClient, actors: Actors) -> None:
    h = actors.headers["admin"]
    # providers: a default id gets a suffix, an id asked for is refused
    body: dict[str, Any] = {"name": "Team LLM", "base_url": "http://127.0.0.1:9/v1"}
    res = client.post("/admin/llm/providers", headers=h, json=body)
    assert res.status_code == 201, res.text
    assert res.json()["id"] == "team-llm"
    assert client.delete("/admin/llm/providers/team-llm", headers=h).status_code == 204
    res = client.post("/admin/llm/providers", headers=h, json=body)
    assert res.status_code == 201, res.text
    assert res.json()["id"] == "team-llm-2"
    res = client.post("/admin/llm/providers", headers=h, json={**body, "id": "team-llm"})
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "id"]
    assert "never reused" in res.json()["detail"][0]["msg"]

    # knowledge bases: the deleted id is recorded and no allocation returns it
    res = client.post("/admin/knowledge", headers=h, json={"name": "Old KB"})
    assert res.status_code == 201, res.text
    kb_id = res.json()["id"]
    assert client.delete(f"/admin/knowledge/{kb_id}", headers=h).status_code == 204
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert session.get(RetiredId, ("kb", kb_id)) is not None
        assert crud.id_taken(session=session, kind="kb", object_id=kb_id)

    # bots: ids asked for through the name are suffixed past every retired one
    for expected in ("echo", "echo-2", "echo-3"):
        res = client.post("/admin/sms/instances", headers=h, json={"name": "Echo"})
        assert res.json()["id"] == expected
        assert client.delete(f"/admin/sms/instances/{expected}", headers=h).status_code == 204
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert crud.unique_slug(session=session, name="Echo") == "echo-4"


def _slug(client: TestClient, token: str, name: str) -> tuple[int, str]:
    client.cookies.set(SESSION_COOKIE, token)
    try:
        res = client.get("/ui/slug", params={"name": name})
    finally:
        client.cookies.clear()
    return res.status_code, res.text


def test_slug_preview_tells_a_user_nothing_about_other_users_ids(
    client: TestClient, actors: Actors
) -> None:
    bob = actors.headers["bob"]["Authorization"].split()[1]
    before = _slug(client, bob, "Secret Project")
    res = client.post(
        "/admin/whatsapp/instances",
        headers=actors.headers["alice"],
        json={"name": "Secret Project"},
    )
    assert res.status_code == 201
    assert res.json()["id"] == "secret-project"
    held = _slug(client, bob, "Secret Project")
    assert held == before
    assert held[0] == 200
    # ... nor about deleted ones
    client.delete("/admin/whatsapp/instances/secret-project", headers=actors.headers["alice"])
    assert _slug(client, bob, "Secret Project") == before
    # an admin sees every bot anyway and gets the id creation will give
    admin = actors.headers["admin"]["Authorization"].split()[1]
    assert "secret-project-2" in _slug(client, admin, "Secret Project")[1]


def test_deleting_a_user_who_owns_things_is_409_naming_them(
    client: TestClient, actors: Actors
) -> None:
    h = actors.headers
    bob = actors.ids["bob"]
    kb = client.post("/admin/knowledge", headers=h["bob"], json={"name": "Bob KB"})
    assert kb.status_code == 201, kb.text
    kb_id = kb.json()["id"]
    res = client.delete(f"/admin/users/{bob}", headers=h["admin"])
    assert res.status_code == 409, res.text
    detail = res.json()["detail"]
    assert detail["knowledge_bases"] == [kb_id]
    assert detail["bots"] == []
    assert "reassign" in detail["message"]

    bot = client.post("/admin/telegram/instances", headers=h["bob"], json={"name": "Bob Bot"})
    assert bot.status_code == 201
    res = client.delete(f"/admin/users/{bob}", headers=h["admin"])
    assert res.status_code == 409
    assert res.json()["detail"]["bots"] == ["bob-bot"]
    assert client.get("/auth/me", headers=h["bob"]).status_code == 200  # nothing was deleted

    # reassign both to alice, then the delete goes through
    alice = actors.ids["alice"]
    # a user may not give their base away; an admin may
    res = client.patch(f"/admin/knowledge/{kb_id}", headers=h["bob"], json={"owner_id": alice})
    assert res.status_code == 403
    res = client.patch(f"/admin/knowledge/{kb_id}", headers=h["admin"], json={"owner_id": alice})
    assert res.status_code == 200, res.text
    assert res.json()["owner_id"] == alice
    res = client.put(
        "/admin/telegram/instances/bob-bot", headers=h["admin"], json={"owner_id": alice}
    )
    assert res.status_code == 200, res.text
    assert client.delete(f"/admin/users/{bob}", headers=h["admin"]).status_code == 204
    assert client.get("/auth/me", headers=h["bob"]).status_code == 401
    assert client.get(f"/admin/knowledge/{kb_id}", headers=h["alice"]).status_code == 200
