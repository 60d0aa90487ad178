"""Schemathesis against the orchestrator's ``/openapi.json`` (in-process ASGI app, signed in as
admin): no operation answers 500 and nothing is logged as an unhandled error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Actors, make_settings
from tests.faults.results import record_bad_inputs, sized

pytestmark = pytest.mark.slow

EXAMPLES = sized(30, 100)


class ErrorRecorder(logging.Handler):
    """Keeps every ERROR record (an unhandled exception is logged at ERROR with exc_info)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ADMIN_PASSWORD = "admin-fuzz-password-123"


@pytest.fixture
def app_and_admin(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    from orchestrator.main import create_app

    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'orchestrator.db'}"))
    with TestClient(app) as client:
        actors = Actors(client)
        headers = actors.add("admin", "admin", ADMIN_PASSWORD)
        actors.add("alice", "user")
        client.post("/admin/whatsapp/instances", headers=headers,
                    json={"name": "Fuzz Bot", "app_secret": "fuzz-app-SECRET-1"})
        yield app, headers


def fresh_admin_headers(app: Any, headers: dict[str, str]) -> None:
    """Sign the admin in again (in place): ``POST /auth/logout`` or a change to the admin's own
    password revokes the token, and every later case would stop at the 401."""
    # from an address of its own: the fuzzed sign-ins may have throttled the fuzzer's
    res = TestClient(app, client=("127.0.0.2", 50000)).post(
        "/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    if res.status_code == 200:
        headers["Authorization"] = f"Bearer {res.json()['access_token']}"


def test_no_operation_answers_500(app_and_admin: tuple[Any, dict[str, str]]) -> None:
    app, headers = app_and_admin
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    recorder = ErrorRecorder()
    logging.getLogger().addHandler(recorder)
    failures: list[str] = []
    tried = 0
    operations = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            fresh_admin_headers(app, headers)

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy() | operation.as_strategy(
                schemathesis.GenerationMode.NEGATIVE))
            def call(case: Any) -> None:
                nonlocal tried
                tried += 1
                try:
                    response = case.call(headers=headers)
                except Exception as exc:  # the in-process transport re-raises what gave a 500
                    failures.append(f"{case.method} {case.formatted_path} -> raised {exc!r:.200}"
                                    f" (query {case.query}, body {case.body!r:.200})")
                    return
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:200]} (query {case.query}, body {case.body!r:.200})"
                    )

            call()
    finally:
        logging.getLogger().removeHandler(recorder)
    record_bad_inputs("orchestrator.openapi", tried)
    assert operations > 20
    assert not failures, "\n".join(failures[:20])
    unhandled = [r.getMessage() for r in recorder.records if r.exc_info]
    assert not unhandled, unhandled[:10]


def test_negative_mode_exists() -> None:
    """Guard: the NEGATIVE generation mode the test relies on is still spelled this way."""
    assert st is not None
    assert schemathesis.GenerationMode.NEGATIVE
