"""Shared fixtures: a fresh orchestrator store on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

POSTGRES_URL = os.environ.get("FLOTILLA_TEST_POSTGRES_URL", "")
TEST_SECRET_KEY = "test-secret-key-for-flotilla-0123456789abcdef"


def _reset_postgres(url: str) -> str:
    from orchestrator.db import normalize_url

    url = normalize_url(url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _db_params() -> list[Any]:
    params: list[Any] = ["sqlite"]
    if POSTGRES_URL:
        params.append("postgres")
    return params


@pytest.fixture(params=_db_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database: SQLite always, PostgreSQL when FLOTILLA_TEST_POSTGRES_URL is set."""
    if request.param == "postgres":
        return _reset_postgres(POSTGRES_URL)
    return f"sqlite:///{tmp_path / 'orchestrator.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database only (for tests whose subject is not the store)."""
    return f"sqlite:///{tmp_path / 'orchestrator.db'}"


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Any:
    from orchestrator.settings import Settings

    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "logs_dir": tmp_path / "logs",
        "database_url": db_url,
        "secret_key": TEST_SECRET_KEY,
        "sandbox": False,
        "auto_start_bots": False,
        # Test sandboxes and fake providers listen on 127.0.0.1 ports picked at run time.
        "allowed_provider_urls": ["127.0.0.1"],
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """Orchestrator settings on a temp data dir and the parametrized database."""
    return make_settings(tmp_path, db_url)


@pytest.fixture
def client(settings: Any) -> Iterator[TestClient]:
    """The orchestrator app in-process (ASGI), lifespan included."""
    from orchestrator.main import create_app

    app = create_app(settings)
    with TestClient(app) as c:
        yield c


class Actors:
    """Creates users of each role and signs them in through the real token route."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.headers: dict[str, dict[str, str]] = {}
        self.ids: dict[str, int] = {}

    def add(self, username: str, role: str, password: str | None = None) -> dict[str, str]:
        from orchestrator import crud
        from orchestrator.schemas import UserCreate

        password = password or secrets.token_urlsafe(12)
        with Session(self.client.app.state.engine) as session:  # type: ignore[attr-defined]
            user = crud.create_user(
                session=session,
                user_in=UserCreate(username=username, password=password, role=role),
            )
            self.ids[username] = user.id or 0
        res = self.client.post("/auth/token", data={"username": username, "password": password})
        assert res.status_code == 200, res.text
        self.headers[username] = {"Authorization": f"Bearer {res.json()['access_token']}"}
        return self.headers[username]


@pytest.fixture
def actors(client: TestClient) -> Actors:
    """admin, alice (user), bob (user), gary (guest), all signed in."""
    a = Actors(client)
    a.add("admin", "admin")
    a.add("alice", "user")
    a.add("bob", "user")
    a.add("gary", "guest")
    return a


@pytest.fixture
def wa_payload() -> Callable[..., dict[str, Any]]:
    """A valid WhatsApp instance body with test secrets."""

    def build(**extra: Any) -> dict[str, Any]:
        body = {
            "name": "Support Bot",
            "phone_number_id": "1234567890",
            "waba_id": "9876543210",
            "access_token": "EAAG-test-access-token-SECRET-1111",
            "verify_token": "verify-SECRET-2222",
            "app_secret": "appsecret-SECRET-3333",
        }
        body.update(extra)
        return body

    return build
