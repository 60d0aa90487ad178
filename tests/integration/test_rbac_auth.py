"""Auth and RBAC: every role against every instance and user route."""

from __future__ import annotations

from typing import Any

import pytest

KINDS = ("whatsapp", "sms", "telegram")


@pytest.fixture
def bots(client, actors) -> dict[str, str]:
    """alice and bob each own one bot of every kind; returns kind -> alice's bot id."""
    ids = {}
    for kind in KINDS:
        a = client.post(
            f"/admin/{kind}/instances",
            json={"name": f"Alice {kind}"},
            headers=actors.headers["alice"],
        )
        assert a.status_code == 201, a.text
        assert a.json()["owner_id"] == actors.ids["alice"]
        b = client.post(
            f"/admin/{kind}/instances", json={"name": f"Bob {kind}"}, headers=actors.headers["bob"]
        )
        assert b.status_code == 201
        ids[kind] = a.json()["id"]
    return ids


# (role, expected status) for each route on alice's bot
READ_EXPECT = {"admin": 200, "alice": 200, "bob": 404, "gary": 200, None: 401}
UPDATE_EXPECT = {"admin": 200, "alice": 200, "bob": 404, "gary": 403, None: 401}
DELETE_EXPECT = {"admin": 204, "alice": 204, "bob": 404, "gary": 403, None: 401}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", ["admin", "alice", "bob", "gary", None])
def test_instance_routes_by_role(client, actors, bots, kind, who) -> None:
    h = actors.headers[who] if who else {}
    bot = bots[kind]
    url = f"/admin/{kind}/instances/{bot}"
    assert client.get(url, headers=h).status_code == READ_EXPECT[who]
    assert client.put(url, json={"persona": "x"}, headers=h).status_code == UPDATE_EXPECT[who]
    assert client.delete(url, headers=h).status_code == DELETE_EXPECT[who]


@pytest.mark.parametrize("kind", KINDS)
def test_list_shows_what_each_role_may_see(client, actors, bots, kind) -> None:
    def names(who: str) -> set[str]:
        res = client.get(f"/admin/{kind}/instances", headers=actors.headers[who])
        assert res.status_code == 200
        return {b["name"] for b in res.json()}

    both = {f"Alice {kind}", f"Bob {kind}"}
    assert names("admin") == both
    assert names("gary") == both
    assert names("alice") == {f"Alice {kind}"}
    assert names("bob") == {f"Bob {kind}"}
    assert client.get(f"/admin/{kind}/instances").status_code == 401


@pytest.mark.parametrize("kind", KINDS)
def test_create_by_role(client, actors, kind) -> None:
    for who, expected in (("admin", 201), ("alice", 201), ("gary", 403)):
        res = client.post(
            f"/admin/{kind}/instances", json={"name": f"n-{who}"}, headers=actors.headers[who]
        )
        assert res.status_code == expected, (who, res.text)
    assert client.post(f"/admin/{kind}/instances", json={"name": "anon"}).status_code == 401
    # a user cannot create a bot owned by someone else
    res = client.post(
        f"/admin/{kind}/instances",
        json={"name": "sneaky", "owner_id": actors.ids["bob"]},
        headers=actors.headers["alice"],
    )
    assert res.status_code == 403
    # an admin can
    res = client.post(
        f"/admin/{kind}/instances",
        json={"name": "assigned", "owner_id": actors.ids["bob"]},
        headers=actors.headers["admin"],
    )
    assert res.status_code == 201
    assert res.json()["owner_id"] == actors.ids["bob"]


def test_user_cannot_take_ownership(client, actors, bots) -> None:
    res = client.put(
        f"/admin/sms/instances/{bots['sms']}",
        json={"owner_id": actors.ids["alice"]},
        headers=actors.headers["alice"],
    )
    assert res.status_code == 200  # unchanged owner is fine
    res = client.put(
        f"/admin/sms/instances/{bots['sms']}",
        json={"owner_id": actors.ids["bob"]},
        headers=actors.headers["alice"],
    )
    assert res.status_code == 403


USERS_EXPECT = {"admin": True, "alice": False, "gary": False}


@pytest.mark.parametrize("who", ["admin", "alice", "gary", None])
def test_user_routes_by_role(client, actors, who) -> None:
    h = actors.headers[who] if who else {}
    denied = 401 if who is None else 403
    ok = who == "admin"
    res = client.get("/admin/users", headers=h)
    assert res.status_code == (200 if ok else denied)
    if ok:
        assert {u["username"] for u in res.json()} == {"admin", "alice", "bob", "gary"}
        assert "password" not in res.text
        assert "hash" not in res.text
    res = client.post(
        "/admin/users", json={"username": f"new-{who}", "password": "longenough1"}, headers=h
    )
    assert res.status_code == (201 if ok else denied)
    bob = actors.ids["bob"]
    res = client.patch(f"/admin/users/{bob}", json={"role": "guest"}, headers=h)
    assert res.status_code == (200 if ok else denied)
    res = client.delete(f"/admin/users/{bob}", headers=h)
    assert res.status_code == (204 if ok else denied)


def test_disabled_user_cannot_sign_in_or_use_token(client, actors) -> None:
    h_alice = actors.headers["alice"]
    res = client.patch(
        f"/admin/users/{actors.ids['alice']}",
        json={"active": False},
        headers=actors.headers["admin"],
    )
    assert res.status_code == 200
    assert client.get("/auth/me", headers=h_alice).status_code == 401


def test_me_and_bad_tokens(client, actors) -> None:
    res = client.get("/auth/me", headers=actors.headers["gary"])
    assert res.status_code == 200
    assert res.json()["role"] == "guest"
    assert client.get("/auth/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/auth/me").status_code == 401


def test_failed_logins_from_one_address_are_throttled(client, actors) -> None:
    def attempt(username: str) -> Any:
        return client.post("/auth/token", data={"username": username, "password": "wrong-pw"})

    # one username from one address: five free failures, then a growing wait
    for _ in range(5):
        assert attempt("alice").status_code == 401
    res = attempt("alice")
    assert res.status_code == 429
    assert 1 <= int(res.headers["Retry-After"]) <= 2
    # any usernames from one address: ten failures a minute, then a wait of up to a minute
    for i in range(5):
        assert attempt(f"nobody-{i}").status_code == 401
    res = attempt("nobody-else")
    assert res.status_code == 429
    assert 50 <= int(res.headers["Retry-After"]) <= 60


def test_user_validation(client, actors) -> None:
    h = actors.headers["admin"]
    res = client.post(
        "/admin/users", json={"username": "alice", "password": "longenough1"}, headers=h
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "username"]
    res = client.post("/admin/users", json={"username": "x", "password": "short"}, headers=h)
    assert res.status_code == 422
    res = client.post(
        "/admin/users",
        json={"username": "y", "password": "longenough1", "role": "root"},
        headers=h,
    )
    assert res.status_code == 422
    assert client.patch("/admin/users/9999", json={"role": "user"}, headers=h).status_code == 404
