"""A bot row saved before today's rules (or edited in the database) does not start: its port
outside the bot port range, or a provider URL that is neither official nor admin-allowed, is a
clear 409 naming the setting — the bot never listens there and never calls that URL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from orchestrator.models import BotInstance
from tests.conftest import Actors


def _create(client: TestClient, actors: Actors, wa_payload: Any) -> str:
    res = client.post(
        "/admin/whatsapp/instances", json=wa_payload(), headers=actors.headers["alice"]
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _edit_row(client: TestClient, instance_id: str, **changes: Any) -> None:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(BotInstance, instance_id)
        assert row is not None
        for key, value in changes.items():
            if key == "config":
                row.config = {**(row.config or {}), **value}
            else:
                setattr(row, key, value)
        session.add(row)
        session.commit()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"webhook_port": 5432}, "outside the bot port range"),
        ({"webhook_port": 22}, "outside the bot port range"),
        ({"config": {"graph_api_base_url": "http://169.254.169.254/x"}}, "graph_api_base_url"),
    ],
)
def test_a_row_against_the_rules_does_not_start(
    client: TestClient, actors: Actors, wa_payload: Any, changes: dict[str, Any], needle: str
) -> None:
    instance_id = _create(client, actors, wa_payload)
    _edit_row(client, instance_id, **changes)
    res = client.post(
        f"/admin/whatsapp/instances/{instance_id}/start", headers=actors.headers["alice"]
    )
    assert res.status_code == 409, res.text
    assert needle in res.text
    status = client.get(
        f"/admin/whatsapp/instances/{instance_id}/status", headers=actors.headers["alice"]
    ).json()
    assert status.get("pid") in (None, 0)
