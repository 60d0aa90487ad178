"""RBAC matrix generated from the route table: every ``/admin/*`` route × admin, owner, another
user, guest and anonymous. A route added without RBAC fails here without anyone listing it.

Expected (ARCHITECTURE.md, "RBAC checked per object"):

* anonymous → 401 everywhere;
* admin → never 401/403;
* admin-only areas (``/admin/users*``, ``/admin/llm/providers*``: the orchestrator's shared AI
  backends) → 403 for everyone else;
* guest → 403 on writes; on reads the same answer as the admin (200 where the admin gets 200);
* another user on the owner's object (a path naming the owner's bot or knowledge base, or a
  body naming the owner's bot) → 404 (no hint that it exists);
* the owner → never 401/403, and no 404 where the admin finds the object.

Read-only POSTs (a search, a preview) count as reads; they are listed in ``READ_LIKE``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actors

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ADMIN_ONLY = ("/admin/users", "/admin/llm/providers")
READ_LIKE = {
    ("POST", "/admin/knowledge/{kb_id}/search"),
    ("POST", "/admin/ai/test"),
    ("POST", "/admin/tts/test"),
    ("POST", "/admin/funnels/validate"),
    ("POST", "/admin/funnels/preview"),
    ("POST", "/admin/templates/{template_id}/preview"),
}
OWNED_PARAMS = ("{instance_id}", "{kb_id}")
BOT_IN_BODY = ("/admin/ai/test", "/admin/funnels/preview")  # bodies naming the owner's bot


def admin_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) under ``/admin`` in the app's route table (nested routers too)."""

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers
                yield from walk(route.original_router.routes)
            elif hasattr(route, "routes") and not hasattr(route, "methods"):
                yield from walk(route.routes)
            else:
                yield route

    out = set()
    for route in walk(app.routes):
        path = getattr(route, "path", "")
        if not path.startswith("/admin"):
            continue
        for method in getattr(route, "methods", None) or ():
            if method not in ("HEAD", "OPTIONS"):
                out.add((method, path))
    return sorted(out)


class World:
    """The objects the matrix needs, re-created whenever an allowed call deleted them."""

    def __init__(self, client: TestClient, actors: Actors) -> None:
        self.client = client
        self.actors = actors
        self.values: dict[str, str] = {"kind": "whatsapp", "customer_key": "15550001111",
                                       "doc_id": "1", "template_id": "documents",
                                       "handover_id": "1", "proposal_id": "1"}

    def ensure(self) -> dict[str, str]:
        c, h = self.client, self.actors.headers
        # ids are never reused: a bot re-created after the matrix deleted it gets a new one
        bot = self.values.get("instance_id", "alice-bot")
        if c.get(f"/admin/whatsapp/instances/{bot}", headers=h["admin"]).status_code == 404:
            res = c.post("/admin/whatsapp/instances", headers=h["alice"],
                         json={"name": "Alice Bot", "enabled": False})
            assert res.status_code == 201, res.text
            bot = str(res.json()["id"])
        self.values["instance_id"] = bot
        kb = self.values.get("kb_id")
        if kb is None or c.get(f"/admin/knowledge/{kb}", headers=h["admin"]).status_code == 404:
            res = c.post("/admin/knowledge", headers=h["alice"], json={"name": "Alice KB"})
            assert res.status_code in (200, 201), res.text
            self.values["kb_id"] = str(res.json()["id"])
        prov = self.values.get("provider_id")
        if prov is None or c.get(f"/admin/llm/providers/{prov}",
                                 headers=h["admin"]).status_code == 404:
            res = c.post("/admin/llm/providers", headers=h["admin"],
                         json={"name": "Shared LLM", "base_url": "http://127.0.0.1:9/v1"})
            assert res.status_code in (200, 201), res.text
            self.values["provider_id"] = str(res.json()["id"])
        users = c.get("/admin/users", headers=h["admin"]).json()
        victim = next((u for u in users if u["username"] == "victim"), None)
        if victim is None:
            res = c.post("/admin/users", headers=h["admin"],
                         json={"username": "victim", "password": "victim-password-123",
                               "role": "user"})
            assert res.status_code == 201, res.text
            victim = res.json()
        self.values["user_id"] = str(victim["id"])
        return self.values

    def body(self, method: str, path: str) -> dict[str, Any] | None:
        """A plausible body, so an allowed call gets past validation to the RBAC check."""
        if method in ("GET", "DELETE"):
            return None
        bodies: dict[str, dict[str, Any]] = {
            "/admin/users": {"username": "newbie", "password": "newbie-password-123",
                             "role": "user"},
            "/admin/users/{user_id}": {"role": "user"},
            "/admin/{kind}/instances": {"name": "Another Bot"},
            "/admin/{kind}/instances/{instance_id}": {"persona": "calm"},
            "/admin/knowledge": {"name": "Another KB"},
            "/admin/knowledge/{kb_id}/search": {"query": "price"},
            "/admin/llm/providers": {"name": "Other LLM", "base_url": "http://127.0.0.1:9/v1"},
            "/admin/llm/providers/{provider_id}": {"name": "Shared LLM 2"},
            "/admin/ai/test": {"kind": "whatsapp", "bot_id": self.values["instance_id"],
                               "message": "hi"},
            "/admin/tts/test": {"text": "hi"},
            "/admin/funnels/validate": {"name": "not a whole funnel"},
            "/admin/funnels/preview": {"kind": "whatsapp", "bot_id": self.values["instance_id"],
                                       "messages": [{"text": "hi"}]},
            "/admin/templates/{template_id}/preview": {"business": {"name": "Corner Café"}},
            "/admin/{kind}/instances/{instance_id}/messages": {"to": "+15550001111",
                                                               "text": "hi"},
            "/admin/{kind}/instances/{instance_id}/simulate": {"from": "+15550001111",
                                                               "text": "hi"},
            "/admin/{kind}/instances/{instance_id}/handovers/{handover_id}/reply": {"text": "hi"},
        }
        return bodies.get(path, {})

    def call(self, method: str, path: str, who: str | None) -> int:
        values = self.ensure()
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)
        headers = self.actors.headers[who] if who else {}
        body = self.body(method, path)
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        return self.client.request(method, url, **kwargs).status_code


def expectations(method: str, path: str, admin_status: int) -> dict[str, set[int] | str]:
    """What each actor must get, given what the admin got (the admin is the 'allowed' probe)."""
    write = method in WRITE_METHODS and (method, path) not in READ_LIKE
    owned = any(p in path for p in OWNED_PARAMS) or path in BOT_IN_BODY
    if path.startswith(ADMIN_ONLY):
        return {"anonymous": {401}, "gary": {403}, "bob": {403}, "alice": {403}}
    exp: dict[str, set[int] | str] = {"anonymous": {401}}
    exp["gary"] = {403} if write else ({200} if admin_status == 200 else "like-admin")
    exp["bob"] = {404} if owned else "allowed"
    exp["alice"] = "like-admin" if owned else "allowed"
    return exp


@pytest.fixture
def world(client: TestClient, actors: Actors) -> World:
    return World(client, actors)


def rbac_failures(client: TestClient, world: World) -> list[str]:
    """Run the whole matrix; return one line per (route, actor) that got the wrong answer."""
    routes = admin_routes(client.app)
    assert len(routes) >= 25, routes  # the walk found the table, not an empty shell
    failures: list[str] = []
    for method, path in routes:
        # refused callers first, then the owner, then the admin (deletes last)
        got: dict[str, int] = {}
        for who in ("anonymous", "gary", "bob", "alice"):
            got[who] = world.call(method, path, None if who == "anonymous" else who)
        got["admin"] = world.call(method, path, "admin")
        if got["admin"] in (401, 403):
            failures.append(f"{method} {path}: admin got {got['admin']}")
        for who, want in expectations(method, path, got["admin"]).items():
            status = got[who]
            if want == "allowed":
                ok = status not in (401, 403, 404) or (status == 404 and got["admin"] == 404)
            elif want == "like-admin":
                ok = status not in (401, 403) and (status != 404 or got["admin"] == 404)
            else:
                assert isinstance(want, set)
                ok = status in want
            if not ok:
                failures.append(f"{method} {path}: {who} got {status}, want {want} "
                                f"(admin got {got['admin']})")
    return failures


def test_every_admin_route_enforces_rbac(client: TestClient, world: World) -> None:
    failures = rbac_failures(client, world)
    assert not failures, "\n".join(failures)


def test_a_route_added_without_rbac_is_caught(client: TestClient, world: World) -> None:
    app: Any = client.app

    @app.get("/admin/forgotten")
    def forgotten() -> dict[str, bool]:
        return {"ok": True}

    @app.delete("/admin/{kind}/instances/{instance_id}/forgotten")
    def forgotten_write(kind: str, instance_id: str) -> dict[str, bool]:
        return {"ok": True}

    failures = rbac_failures(client, world)
    assert any("GET /admin/forgotten: anonymous got 200" in f for f in failures), failures
    assert any("/forgotten: gary got 200" in f for f in failures), failures
    assert any("/forgotten: bob got 200" in f for f in failures), failures
