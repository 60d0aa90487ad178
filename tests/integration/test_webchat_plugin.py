"""A fourth channel defined only under ``tests/`` (``tests.support.webchat``) works end to end
through the channel registry's public hook: the test only sets ``FLOTILLA_CHANNEL_PLUGINS`` for
a real orchestrator process, which serves ``/admin/webchat/instances``, runs the bot as a
subprocess (``python -m tests.support.webchat``), forwards ``/hooks/webchat/{id}/webhook`` with
the channel's signature header, and shows the conversation. This process never imports the
plugin: nothing outside ``tests/`` and nothing here registers it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest

from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow

PLUGIN = "tests.support.webchat"
SECRET = "webchat-widget-SECRET-9876"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


class Widget:
    """The website's chat widget: records the bot's signed replies (``POST /messages``)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self.lock = threading.Lock()
        widget = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                good = hmac.compare_digest(
                    self.headers.get("X-Webchat-Signature") or "", sign(body)
                )
                with widget.lock:
                    if self.path != "/messages" or not good:
                        widget.refused += 1
                        status, answer = 403, {"error": "bad signature"}
                    else:
                        widget.messages.append(json.loads(body))
                        status, answer = 200, {"id": f"wc-out-{len(widget.messages)}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, to: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if m["to"] == to]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"widget got {self.messages} (refused {self.refused})")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def widget() -> Iterator[Widget]:
    w = Widget()
    yield w
    w.close()


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    proc = OrchestratorProcess(
        tmp_path_factory.mktemp("webchat"), FLOTILLA_CHANNEL_PLUGINS=PLUGIN
    ).start()
    yield proc
    proc.close()


def test_plugin_is_registered_only_by_the_env_var(orch: OrchestratorProcess) -> None:
    assert PLUGIN not in sys.modules  # this process never imported it
    channels = {c["kind"]: c for c in orch.api("GET", "/admin/channels").json()}
    assert list(channels) == ["whatsapp", "sms", "telegram", "webchat"]
    webchat = channels["webchat"]
    assert webchat["label"] == "Web chat"
    assert webchat["simulator"] == "numbered"
    assert webchat["customer_id_scheme"] == "webchat_visitor"
    fields = {f["name"]: f for f in webchat["fields"]}
    assert fields["webchat_secret"]["secret"] is True
    assert fields["webchat_outbound_url"]["type"] == "url"


def test_webchat_bot_answers_the_default_funnel(orch: OrchestratorProcess, widget: Widget) -> None:
    bot = orch.create_bot(
        "webchat",
        name="Site Chat",
        webchat_secret=SECRET,
        webchat_outbound_url=widget.url,
        template="sales",  # the seed-004 funnel (a new bot's default is the documents one)
    )
    assert bot["kind"] == "webchat"
    assert bot["webchat_secret"] == "****9876"  # masked like any channel's secret
    assert bot["webchat_greeting_delay"] == 0  # the manifest's default
    listed = orch.api("GET", "/admin/webchat/instances")
    assert [b["id"] for b in listed.json()] == ["site-chat"]
    assert SECRET not in listed.text

    res = orch.api("POST", "/admin/webchat/instances/site-chat/start")
    assert res.status_code == 200, res.text
    st = orch.wait_state("webchat", "site-chat", "running", timeout=40)
    cmdline = psutil.Process(st["pid"]).cmdline()
    assert cmdline[-2:] == ["-m", PLUGIN]  # the manifest's module

    hook = f"{orch.url}/hooks/webchat/site-chat/webhook"
    body = json.dumps({"id": "m1", "visitor": "v-42", "name": "Ada", "text": "hi"}).encode()
    # the bot's own verify: no signature 401, a wrong one 403 (through the public ingress)
    assert orch.http.post(hook, content=body).status_code == 401
    bad = orch.http.post(hook, content=body, headers={"X-Webchat-Signature": "sha256=00"})
    assert bad.status_code == 403
    # signed: /hooks forwards the manifest's signature header
    res = orch.http.post(
        hook,
        content=body,
        headers={"X-Webchat-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert res.status_code == 200, res.text
    assert res.json()["ok"] is True

    (greeting,) = widget.wait("v-42", 1)
    # the default funnel's welcome ("Hello, {name}! ... What would you like to do?")
    assert greeting["text"].startswith("Hello, ")
    assert "What would you like to do?" in greeting["text"]
    assert "\n1. Find my solution\n2. FAQ" in greeting["text"]  # its options, numbered
    assert greeting["tag"] == "ob:1:0"
    assert widget.refused == 0  # every reply was signed with the bot's secret

    # the conversation through the conversations API (the bot's own database)
    deadline = time.monotonic() + 15
    while True:
        convs = orch.api("GET", "/admin/webchat/instances/site-chat/conversations").json()
        if convs and convs[0]["count"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(convs) == 1
    assert convs[0]["identities"] == {"webchat_visitor": "v-42"}
    assert convs[0]["name"] == "Ada"
    detail = orch.api("GET", "/admin/webchat/instances/site-chat/conversations/v-42").json()
    texts = [(m["direction"], m["text"]) for m in detail["messages"]]
    assert texts[0] == ("in", "hi")
    assert texts[1][0] == "out"
    assert texts[1][1].startswith("Hello, ")  # the reply as the bot stored it


def test_webchat_settings_are_checked_against_its_manifest(orch: OrchestratorProcess) -> None:
    path = "/admin/webchat/instances"
    not_its = orch.api("POST", path, json={"name": "X", "access_token": "t"})  # WhatsApp's
    assert not_its.status_code == 422
    assert not_its.json()["detail"][0]["loc"] == ["body", "access_token"]
    wrong_type = orch.api("POST", path, json={"name": "X", "webchat_greeting_delay": "soon"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"][0]["loc"] == ["body", "webchat_greeting_delay"]
    too_long = orch.api("POST", path, json={"name": "X", "webchat_secret": "s" * 257})
    assert too_long.status_code == 422
    not_allowed = orch.api(
        "POST", path, json={"name": "X", "webchat_outbound_url": "https://widget.example"}
    )
    assert not_allowed.status_code == 422  # a provider URL an admin did not allow
    assert "FLOTILLA_ALLOWED_PROVIDER_URLS" in not_allowed.text
    # a webchat field is not a setting of another kind either
    other = orch.api("POST", "/admin/sms/instances", json={"name": "Y", "webchat_secret": "s"})
    assert other.status_code == 422
    assert orch.api("GET", "/admin/nochat/instances").status_code == 404
    assert orch.api("POST", "/admin/nochat/instances", json={"name": "Z"}).status_code == 404
