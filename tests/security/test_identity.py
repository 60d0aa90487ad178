"""Identity and sessions (issue 10, findings 3 and 8), on SQLite and PostgreSQL:

* a deleted user's token never names the next user created (ids are not reused; tokens name
  the user's random uid);
* tokens are revoked by sign-out (API and admin UI), password change, role change and
  deactivation;
* failed sign-ins from one address do not lock the user out from another;
* an unknown username costs the same time as a wrong password;
* the password policy (length and zxcvbn strength) on the API, and for first-run setup;
* the migration gives existing users a uid and makes SQLite keys ``AUTOINCREMENT``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session

from orchestrator import crud
from orchestrator.api.deps import SESSION_COOKIE
from orchestrator.api.routes.auth import LoginLimiter
from orchestrator.bootstrap import WeakAdminPasswordError, ensure_admin
from orchestrator.db import alembic_config, make_engine, migrate, normalize_url
from orchestrator.security import PasswordPolicy, _admin_key
from tests.conftest import TEST_SECRET_KEY, Actors, make_settings

STRONG = "correct-horse-battery-staple-42"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign_in(client: TestClient, username: str, password: str) -> str:
    res = client.post("/auth/token", data={"username": username, "password": password})
    assert res.status_code == 200, res.text
    return str(res.json()["access_token"])


def _new_user(client: TestClient, admin: dict[str, str], username: str, role: str) -> int:
    res = client.post(
        "/admin/users",
        headers=admin,
        json={"username": username, "password": STRONG, "role": role},
    )
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def test_deleted_users_token_is_refused_after_a_new_admin_is_created(
    client: TestClient, actors: Actors
) -> None:
    admin = actors.headers["admin"]
    temp_id = _new_user(client, admin, "temp", "user")
    token = _sign_in(client, "temp", STRONG)
    assert client.get("/auth/me", headers=_bearer(token)).json()["username"] == "temp"
    assert client.delete(f"/admin/users/{temp_id}", headers=admin).status_code == 204

    new_id = _new_user(client, admin, "new-admin", "admin")
    assert new_id != temp_id  # integer ids are not reused either (AUTOINCREMENT / sequences)
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 401
    assert client.get("/admin/users", headers=_bearer(token)).status_code == 401
    res = client.post(
        "/admin/users",
        headers=_bearer(token),
        json={"username": "takeover", "password": STRONG, "role": "admin"},
    )
    assert res.status_code == 401


def test_a_token_naming_a_user_by_integer_id_is_refused(
    client: TestClient, actors: Actors
) -> None:
    """Tokens made before this change (``sub`` = integer id) no longer sign anyone in."""
    now = int(time.time())
    old_style = {
        "sub": str(actors.ids["admin"]),
        "role": "admin",
        "aud": "flotilla-admin",
        "iat": now,
        "exp": now + 600,
        "ver": 0,
    }
    token = jwt.encode(old_style, _admin_key(TEST_SECRET_KEY), algorithm="HS256")
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 401
    good = jwt.decode(
        actors.headers["admin"]["Authorization"].split()[1], options={"verify_signature": False}
    )
    assert {"sub", "ver", "jti"} <= set(good)
    without_version = {k: v for k, v in good.items() if k != "ver"}
    token = jwt.encode(without_version, _admin_key(TEST_SECRET_KEY), algorithm="HS256")
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 401


def test_sign_out_revokes_every_token_of_the_user(client: TestClient, actors: Actors) -> None:
    _new_user(client, actors.headers["admin"], "carol", "user")
    laptop = _sign_in(client, "carol", STRONG)
    phone = _sign_in(client, "carol", STRONG)
    assert client.get("/auth/me", headers=_bearer(phone)).status_code == 200
    assert client.post("/auth/logout", headers=_bearer(laptop)).status_code == 204
    assert client.get("/auth/me", headers=_bearer(laptop)).status_code == 401
    assert client.get("/auth/me", headers=_bearer(phone)).status_code == 401
    assert client.post("/auth/logout", headers=_bearer(laptop)).status_code == 401
    fresh = _sign_in(client, "carol", STRONG)
    assert client.get("/auth/me", headers=_bearer(fresh)).status_code == 200
    assert client.get("/auth/me", headers=actors.headers["alice"]).status_code == 200  # others


def test_admin_ui_sign_out_revokes_the_session_token(client: TestClient, actors: Actors) -> None:
    _new_user(client, actors.headers["admin"], "dave", "user")
    res = client.post(
        "/login", data={"username": "dave", "password": STRONG}, follow_redirects=False
    )
    assert res.status_code == 303, res.text
    cookie = res.cookies.get(SESSION_COOKIE)
    assert cookie
    assert client.get("/auth/me", headers=_bearer(cookie)).status_code == 200
    page = client.get("/bots")  # the form carries the session's CSRF token
    assert page.status_code == 200
    data: dict[str, str] = {}
    marker = 'name="csrf_token" value="'
    if marker in page.text:
        start = page.text.index(marker) + len(marker)
        data["csrf_token"] = page.text[start : page.text.index('"', start)]
    res = client.post(
        "/logout", data=data, follow_redirects=False, headers={"Origin": "http://testserver"}
    )
    assert res.status_code == 303, res.text
    client.cookies.clear()
    # a copy of the cookie taken before signing out is useless
    assert client.get("/auth/me", headers=_bearer(cookie)).status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        {"password": "another-strong-passphrase-77"},
        {"role": "guest"},
        {"active": False},
    ],
    ids=["password", "role", "deactivation"],
)
def test_password_role_and_deactivation_revoke_tokens(
    client: TestClient, actors: Actors, change: dict[str, Any]
) -> None:
    admin = actors.headers["admin"]
    erin = _new_user(client, admin, "erin", "user")
    token = _sign_in(client, "erin", STRONG)
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 200
    res = client.patch(f"/admin/users/{erin}", headers=admin, json=change)
    assert res.status_code == 200, res.text
    if change.get("active") is False:
        client.patch(f"/admin/users/{erin}", headers=admin, json={"active": True})
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 401
    password = change.get("password", STRONG)
    fresh = _sign_in(client, "erin", password)
    assert client.get("/auth/me", headers=_bearer(fresh)).status_code == 200
    # an update that changes nothing that matters keeps the session
    res = client.patch(f"/admin/users/{erin}", headers=admin, json={"active": True})
    assert res.status_code == 200
    assert client.get("/auth/me", headers=_bearer(fresh)).status_code == 200


def test_failures_from_one_address_do_not_lock_the_user_out_from_another(
    client: TestClient, actors: Actors
) -> None:
    _new_user(client, actors.headers["admin"], "frank", "user")
    attacker = TestClient(client.app, client=("203.0.113.7", 40000))
    victim = TestClient(client.app, client=("198.51.100.20", 40001))
    codes = [
        attacker.post(
            "/auth/token", data={"username": "frank", "password": f"guess-{i}"}
        ).status_code
        for i in range(15)
    ]
    assert codes[:5] == [401] * 5
    assert set(codes[5:]) == {429}  # backoff for this username from this address
    # the right password from the attacker's address waits too ...
    res = attacker.post("/auth/token", data={"username": "frank", "password": STRONG})
    assert res.status_code == 429
    assert int(res.headers["Retry-After"]) >= 1
    # ... but the real user at another address signs in
    res = victim.post("/auth/token", data={"username": "frank", "password": STRONG})
    assert res.status_code == 200, res.text
    # and spraying many usernames from one address hits the per-address limit
    sprayer = TestClient(client.app, client=("203.0.113.8", 40002))
    codes = [
        sprayer.post("/auth/token", data={"username": f"user{i}", "password": "x"}).status_code
        for i in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]


def test_backoff_doubles_and_a_success_clears_it() -> None:
    limiter = LoginLimiter(free_failures=2, backoff_base=1.0, backoff_max=8.0, per_address=1000)
    waits = []
    for _ in range(7):
        limiter.fail("u", "a")
        waits.append(round(limiter.wait("u", "a")))
    assert waits == [0, 1, 2, 4, 8, 8, 8]
    assert limiter.wait("u", "b") == 0
    limiter.succeed("u", "a")
    assert limiter.wait("u", "a") == 0


def test_unknown_username_costs_the_same_time_as_a_wrong_password(
    client: TestClient, actors: Actors
) -> None:
    client.app.state.login_limiter = LoginLimiter(  # type: ignore[attr-defined]
        free_failures=1000, per_address=1000
    )

    def timed(username: str) -> float:
        start = time.perf_counter()
        res = client.post("/auth/token", data={"username": username, "password": "wrong-pw"})
        elapsed = time.perf_counter() - start
        assert res.status_code == 401
        return elapsed

    timed("alice")  # warm up
    known, unknown = [], []
    for i in range(5):
        known.append(timed("alice"))
        unknown.append(timed(f"nobody-{i}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


@pytest.mark.parametrize(
    "password",
    ["password1234", "aaaaaaaaaaaa", "qwertyuiop12", "short-1"],
)
def test_weak_passwords_are_422_with_advice(
    client: TestClient, actors: Actors, password: str
) -> None:
    admin = actors.headers["admin"]
    res = client.post(
        "/admin/users",
        headers=admin,
        json={"username": "weakling", "password": password, "role": "admin"},
    )
    assert res.status_code == 422, res.text
    err = res.json()["detail"][0]
    assert err["loc"] == ["body", "password"]
    if len(password) >= 10:
        assert "too easy to guess" in err["msg"]
        assert len(err["msg"]) > len("password is too easy to guess (strength 0 of 4, needs 3)")
    res = client.patch(
        f"/admin/users/{actors.ids['alice']}", headers=admin, json={"password": password}
    )
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "password"]
    # the username itself does not make a password
    res = client.post(
        "/admin/users",
        headers=admin,
        json={"username": "gwendolyn-smith", "password": "gwendolyn-smith1"},
    )
    assert res.status_code == 422


def test_first_run_admin_password_must_satisfy_the_policy(tmp_path: Path, db_url: str) -> None:
    weak = make_settings(tmp_path, db_url, admin_password="admin12345")
    weak.ensure_dirs()
    migrate(weak.database_url)
    engine = make_engine(weak.database_url)
    with pytest.raises(WeakAdminPasswordError, match="FLOTILLA_ADMIN_PASSWORD"):
        ensure_admin(weak, engine)
    with Session(engine) as session:
        assert crud.count_users(session=session) == 0
    # a generated one always passes
    generated = ensure_admin(make_settings(tmp_path, db_url), engine)
    assert generated is not None
    assert PasswordPolicy().problem(generated) is None
    engine.dispose()


def _raw(url: str) -> Callable[[str], Any]:
    engine = create_engine(normalize_url(url))

    def run(sql: str) -> Any:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return result.fetchall() if sql.startswith("SELECT") else None

    return run


def test_migration_gives_users_uids_and_stops_id_reuse(db_url: str) -> None:
    cfg = alembic_config(db_url)
    command.upgrade(cfg, "0002")
    sql = _raw(db_url)
    for name in ("a", "b"):
        sql(
            "INSERT INTO users (username, password_hash, role, active, created_at) "  # noqa: S608 - fixed names
            f"VALUES ('{name}', 'h', 'user', true, '2026-01-01 00:00:00+00')"
        )
    sql(
        "INSERT INTO knowledge_bases (id, name, owner_id, created_at) "
        "VALUES ('kb1', 'K', 2, '2026-01-01 00:00:00+00')"
    )
    command.upgrade(cfg, "head")
    rows = sql("SELECT id, uid, token_version FROM users ORDER BY id")
    assert [r[0] for r in rows] == [1, 2]
    assert all(len(r[1]) == 32 for r in rows)
    assert rows[0][1] != rows[1][1]
    assert [r[2] for r in rows] == [0, 0]
    assert sql("SELECT owner_id FROM knowledge_bases") == [(2,)]
    sql("DELETE FROM knowledge_bases")
    sql("DELETE FROM users WHERE id = 2")
    sql(
        "INSERT INTO users (username, password_hash, role, active, created_at, uid, "
        "token_version) VALUES ('c', 'h', 'user', true, '2026-01-01 00:00:00+00', 'u3', 0)"
    )
    assert sql("SELECT id FROM users WHERE username = 'c'") == [(3,)]
