"""The admin UI is a pure client of the admin API (issue 11, item 5), on SQLite and PostgreSQL:

* ``GET /admin/funnels/default`` serves the built-in funnel (any signed-in user; anonymous 401),
  and the funnel editor's "load the default" reads it through that route;
* ``GET /admin/slug`` previews a bot's id (exact for admins, the plain slug for anyone else);
* the add-bot list, the settings form, the sandbox wiring and the test chat come from
  ``GET /admin/channels``: a channel registered in-process appears with no change to the UI;
* nothing in ``admin_ui/`` opens the database or imports the store's modules.
"""

from __future__ import annotations

import ast
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.csrf import session_csrf_token
from orchestrator.api.deps import SESSION_COOKIE
from shared.channels import registry
from shared.channels.registry import Capabilities, ChannelManifest, ConfigField
from shared.funnel import default_funnel
from tests.conftest import Actors

ADMIN_UI = Path(__file__).resolve().parents[2] / "admin_ui"

KIOSK = ChannelManifest(
    kind="kiosk",
    label="Kiosk Desk",
    module="tests.support.kiosk_bot",
    description="A made-up channel registered by this test only.",
    fields=(
        ConfigField(
            "kiosk_token",
            "str",
            "",
            secret=True,
            label="Kiosk token",
            help="The kiosk's key.",
            sandbox_default="kiosk-{random}",
        ),
        ConfigField(
            "kiosk_url",
            "url",
            "https://kiosk.example",
            label="Kiosk address",
            help="Where the kiosk API lives.",
            sandbox_default="{sandbox_url}/kiosk",
        ),
        ConfigField("kiosk_lanes", "int", 2, label="Lanes", help="How many queues."),
    ),
    identity_schemes=("kiosk_visitor",),
    capabilities=Capabilities(max_text=500),
    public_routes={"/webhook": ("POST",)},
    simulator="numbered",
    customer_id_scheme="kiosk_visitor",
)


def _token(actors: Actors, who: str) -> str:
    return actors.headers[who]["Authorization"].split()[1]


@pytest.fixture
def browser(client: TestClient) -> Iterator[TestClient]:
    """The client with no bearer header of its own: the UI's cookie carries the session."""
    yield client
    client.cookies.clear()


def _signed_in(client: TestClient, actors: Actors, who: str) -> dict[str, str]:
    """Use ``who``'s session cookie; the headers a page's htmx request sends (CSRF token)."""
    token = _token(actors, who)
    client.cookies.set(SESSION_COOKIE, token)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    return {
        "X-CSRF-Token": session_csrf_token(settings, {SESSION_COOKIE: token}),
        "HX-Request": "true",
    }


def _kind_options(page: str) -> dict[str, str]:
    form = page[page.index('id="add-bot-form"') :]
    select = form[: form.index("</select>")]
    return {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<option value="([^"]+)"[^>]*>([^<]*)</option>', select)
    }


# ---------------------------------------------------------------- the default funnel


def test_default_funnel_route_serves_the_built_in_funnel(
    client: TestClient, actors: Actors
) -> None:
    expected = default_funnel().to_dict()
    for who in ("admin", "alice", "gary"):
        res = client.get("/admin/funnels/default", headers=actors.headers[who])
        assert res.status_code == 200, (who, res.text)
        assert res.json() == expected
    assert "greetings" in expected


def test_default_funnel_route_refuses_anonymous_and_bad_tokens(client: TestClient) -> None:
    assert client.get("/admin/funnels/default").status_code == 401
    res = client.get("/admin/funnels/default", headers={"Authorization": "Bearer nonsense"})
    assert res.status_code == 401


def test_funnel_editor_loads_the_default_through_the_api(
    browser: TestClient, actors: Actors
) -> None:
    _signed_in(browser, actors, "alice")
    res = browser.get("/ui/default-funnel")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain")
    assert json.loads(res.text) == default_funnel().to_dict()
    browser.cookies.clear()
    res = browser.get("/ui/default-funnel", follow_redirects=False)
    assert res.status_code == 303
    assert res.headers["location"] == "/login"


# ---------------------------------------------------------------- slug preview


def test_slug_route_is_exact_for_admins_only(client: TestClient, actors: Actors) -> None:
    h = actors.headers
    assert client.get("/admin/slug", params={"name": "Shop"}).status_code == 401
    res = client.post("/admin/sms/instances", headers=h["alice"], json={"name": "Shop"})
    assert res.status_code == 201, res.text
    admin = client.get("/admin/slug", params={"name": "Shop"}, headers=h["admin"]).json()
    assert admin == {"slug": "shop-2", "exact": True}
    for who in ("bob", "alice", "gary"):
        res = client.get("/admin/slug", params={"name": "Shop"}, headers=h[who])
        assert res.json() == {"slug": "shop", "exact": False}, who
    assert client.get("/admin/slug", params={"name": ""}, headers=h["admin"]).status_code == 422


# ---------------------------------------------------------------- channels from the registry


def test_add_bot_list_is_the_registry(
    browser: TestClient, actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    _signed_in(browser, actors, "alice")
    before = _kind_options(browser.get("/bots").text)
    assert before == {m.kind: m.label for m in registry.manifests()}
    assert "kiosk" not in before

    registry.kinds()  # the shipped channels first, then ours (removed again afterwards)
    monkeypatch.setitem(registry._manifests, KIOSK.kind, KIOSK)  # noqa: SLF001
    after = _kind_options(browser.get("/bots").text)
    assert after == {**before, "kiosk": "Kiosk Desk"}


def test_a_registered_channel_gets_its_settings_form_and_sandbox_wiring(
    browser: TestClient, actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.kinds()
    monkeypatch.setitem(registry._manifests, KIOSK.kind, KIOSK)  # noqa: SLF001
    headers = _signed_in(browser, actors, "alice")
    res = browser.post(
        "/ui/bots", data={"kind": "kiosk", "name": "Front Desk", "sandbox": "1"}, headers=headers
    )
    assert res.status_code == 200, res.text
    assert res.headers.get("HX-Redirect") == "/bots/kiosk/front-desk/settings", res.text

    stored = browser.get("/admin/kiosk/instances/front-desk", headers=actors.headers["alice"])
    assert stored.status_code == 200, stored.text
    port = browser.app.state.settings.sandbox_port  # type: ignore[attr-defined]
    assert stored.json()["kiosk_url"] == f"http://127.0.0.1:{port}/kiosk"
    assert stored.json()["kiosk_token"].startswith("****")

    page = browser.get("/bots/kiosk/front-desk/settings").text
    for field in KIOSK.fields:
        assert f'id="f-{field.name}"' in page, field.name
        assert html.escape(field.label) in page
    secret = re.search(r'<input[^>]*id="f-kiosk_token"[^>]*>', page)
    assert secret is not None
    assert "data-secret" in secret.group(0)
    lanes = re.search(r'<input[^>]*id="f-kiosk_lanes"[^>]*>', page)
    assert lanes is not None
    assert 'type="number"' in lanes.group(0)
    assert "Kiosk Desk" in page

    chat = browser.get("/bots/kiosk/front-desk/chat").text
    assert 'data-simulator="numbered"' in chat
    assert re.search(r'<input name="to" value="\d{10}"', chat), "a kiosk_visitor id, no phone"


def test_settings_forms_follow_the_shipped_manifests(browser: TestClient, actors: Actors) -> None:
    headers = _signed_in(browser, actors, "alice")
    for manifest in registry.manifests():
        if manifest.kind not in ("whatsapp", "sms", "telegram"):
            continue
        res = browser.post(
            "/ui/bots",
            data={"kind": manifest.kind, "name": f"{manifest.kind} one", "sandbox": "1"},
            headers=headers,
        )
        location = res.headers.get("HX-Redirect", "")
        assert location.startswith(f"/bots/{manifest.kind}/"), res.text
        page = browser.get(location).text
        inputs = re.findall(r'id="f-([a-z0-9_]+)"', page)
        channel = [f.name for f in manifest.fields]
        assert [n for n in inputs if n in channel] == channel  # all, in the manifest's order
        bot_id = location.split("/")[3]
        bot = browser.get(
            f"/admin/{manifest.kind}/instances/{bot_id}", headers=actors.headers["alice"]
        ).json()
        for f in manifest.fields:
            if f.sandbox_default and "{sandbox_url}" in f.sandbox_default:
                assert bot[f.name].startswith("http://127.0.0.1:"), (manifest.kind, f.name)
        chat = browser.get(location.replace("/settings", "/chat")).text
        assert f'data-simulator="{manifest.simulator}"' in chat


def test_an_unknown_kind_is_refused_in_the_form(browser: TestClient, actors: Actors) -> None:
    headers = _signed_in(browser, actors, "alice")
    res = browser.post("/ui/bots", data={"kind": "fax", "name": "Old"}, headers=headers)
    assert res.status_code == 200
    assert "pick a channel" in res.text
    assert "HX-Redirect" not in res.headers
    assert browser.get("/bots/fax/old/settings").status_code == 404


# ---------------------------------------------------------------- no store in the UI


def test_the_admin_ui_imports_nothing_of_the_store() -> None:
    banned = (
        "orchestrator.crud",
        "orchestrator.db",
        "orchestrator.models",
        "sqlmodel",
        "sqlalchemy",
        "shared.store",
    )
    found = []
    for path in sorted(ADMIN_UI.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith(banned):
                    found.append(f"{path.relative_to(ADMIN_UI.parent)}: {name}")
            if isinstance(node, ast.Name) and node.id == "Session":
                found.append(f"{path.relative_to(ADMIN_UI.parent)}: Session")
    assert found == []


def test_a_new_bot_gets_the_everyday_rate_limit_and_the_tab_offers_the_presets(
    browser: TestClient, actors: Actors
) -> None:
    from orchestrator.schemas import RATE_LIMIT_PRESETS

    headers = _signed_in(browser, actors, "alice")
    res = browser.post(
        "/ui/bots", data={"kind": "whatsapp", "name": "Corner Shop", "sandbox": "1"},
        headers=headers,
    )
    location = res.headers.get("HX-Redirect", "")
    bot_id = location.split("/")[3]
    bot = browser.get(
        f"/admin/whatsapp/instances/{bot_id}", headers=actors.headers["alice"]
    ).json()
    # Not the seed's 5 per 5 h, which silences an ordinary customer after a few questions.
    assert (bot["rate_limit_count"], bot["rate_limit_hours"]) == (30, 1.0)
    assert RATE_LIMIT_PRESETS["everyday"] == (30, 1.0)
    page = browser.get(location.replace("/settings", "/limits")).text
    presets = re.findall(r'data-preset-count="(\d+)" data-preset-hours="([\d.]+)"', page)
    offered = {(int(c), float(h)) for c, h in presets}
    assert offered == set(RATE_LIMIT_PRESETS.values())
