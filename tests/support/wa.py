"""A WhatsApp customer for end-to-end tests: signs Cloud API payloads like Meta and reads the
replies the sandbox Graph API recorded."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[1] / "data" / "whatsapp"
APP_SECRET = "e2e-app-SECRET-value-1234"
VERIFY_TOKEN = "e2e-verify-SECRET-5678"
ACCESS_TOKEN = "EAAG-e2e-access-SECRET-9012"
PHONE_NUMBER_ID = "106540352242922"


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_payload(name: str) -> dict[str, Any]:
    """A recorded Cloud API payload from ``tests/data/whatsapp``."""
    return json.loads((DATA / f"{name}.json").read_text())  # type: ignore[no-any-return]


def bot_fields(sandbox_url: str, **extra: Any) -> dict[str, Any]:
    """Instance fields of a WhatsApp bot wired to the sandbox."""
    return {
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": "102290129340398",
        "access_token": ACCESS_TOKEN,
        "verify_token": VERIFY_TOKEN,
        "app_secret": APP_SECRET,
        "graph_api_base_url": f"{sandbox_url}/graph",
        **extra,
    }


def options(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, title) of every button or list row in a recorded interactive message."""
    inter = message.get("payload", {}).get("interactive") or {}
    action = inter.get("action") or {}
    out = [(b["reply"]["id"], b["reply"]["title"]) for b in action.get("buttons", [])]
    for section in action.get("sections", []):
        out += [(r["id"], r["title"]) for r in section.get("rows", [])]
    return out


def body_text(message: dict[str, Any]) -> str:
    """The visible text of a recorded message."""
    payload = message.get("payload", {})
    if payload.get("type") == "text":
        return str(payload["text"]["body"])
    inter = payload.get("interactive") or {}
    return str((inter.get("body") or {}).get("text", message.get("text") or ""))


class WaCustomer:
    """One customer talking to one bot port; replies come from the sandbox's record."""

    def __init__(
        self,
        bot_url: str,
        sandbox_url: str,
        phone: str | None = None,
        *,
        bsuid: str | None = None,
        username: str | None = None,
        name: str = "Test Customer",
        secret: str = APP_SECRET,
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self.sandbox_url = sandbox_url
        self.phone = phone
        self.bsuid = bsuid
        self.username = username
        self.name = name
        self.secret = secret
        self.seq = 0
        self.http = httpx.Client(timeout=15)

    @property
    def address(self) -> str:
        """What the bot sends to: phone digits, else the BSUID."""
        return self.phone.lstrip("+") if self.phone else str(self.bsuid)

    def payload(
        self,
        text: str = "",
        button: str | None = None,
        *,
        list_row: bool = False,
        wamid: str | None = None,
        ts: int | None = None,
    ) -> dict[str, Any]:
        """A Cloud API messages webhook body for one message from this customer."""
        msg: dict[str, Any] = {
            "id": wamid or f"wamid.e2e.{uuid.uuid4().hex}",
            "timestamp": str(ts or int(time.time())),
        }
        contact: dict[str, Any] = {"profile": {"name": self.name}}
        if self.phone:
            contact["wa_id"] = msg["from"] = self.phone.lstrip("+")
        if self.bsuid:
            contact["user_id"] = msg["from_user_id"] = self.bsuid
        if self.username:
            contact["profile"]["username"] = self.username
        if button:
            kind = "list_reply" if list_row else "button_reply"
            msg["type"] = "interactive"
            msg["interactive"] = {"type": kind, kind: {"id": button, "title": text or button}}
        else:
            msg["type"] = "text"
            msg["text"] = {"body": text}
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": PHONE_NUMBER_ID,
                                },
                                "contacts": [contact],
                                "messages": [msg],
                            },
                        }
                    ],
                }
            ],
        }

    def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        secret: str | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST a webhook body signed as Meta does."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sig = signature if signature is not None else sign(raw, secret or self.secret)
        headers = {"Content-Type": "application/json"}
        if sig:
            headers["X-Hub-Signature-256"] = sig
        return self.http.post(f"{self.bot_url}/webhook", content=raw, headers=headers)

    def replies(self, *, wait: float = 10.0, quiet: float = 0.5) -> list[dict[str, Any]]:
        """Messages the sandbox recorded for this customer since the last call: waits for the
        first up to ``wait`` s, then until ``quiet`` s pass with nothing new."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic() if not got else quiet
            if remaining <= 0:
                break
            res = self.http.get(
                f"{self.sandbox_url}/_sandbox/messages",
                params={
                    "provider": "graph",
                    "to": self.address,
                    "since": self.seq,
                    "wait": f"{min(remaining, 5):.2f}",
                },
            )
            new = res.json()["messages"]
            if not new:
                if got:
                    break
                continue
            got += new
            self.seq = new[-1]["seq"]
        return got

    def say(
        self,
        text: str = "",
        button: str | None = None,
        *,
        list_row: bool = False,
        wait: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Send a message (text or a button/list press) and return the bot's replies."""
        res = self.post(self.payload(text, button, list_row=list_row))
        assert res.status_code == 200, res.text
        return self.replies(wait=wait)

    def silence(self, seconds: float = 1.5) -> list[dict[str, Any]]:
        """Replies that arrive within ``seconds`` (for 'the bot says nothing' checks)."""
        return self.replies(wait=seconds, quiet=0.2)


def with_ids(payload: dict[str, Any], **ids: Any) -> dict[str, Any]:
    """A copy of a recorded payload with its customer/message ids replaced."""
    out = copy.deepcopy(payload)
    for entry in out["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            for msg in value.get("messages", []):
                msg["id"] = f"{msg['id']}.{ids.get('suffix', uuid.uuid4().hex[:8])}"
                msg["timestamp"] = str(int(time.time()))
                if "phone" in ids:
                    msg["from"] = ids["phone"]
            for contact in value.get("contacts", []):
                if "phone" in ids and "wa_id" in contact:
                    contact["wa_id"] = ids["phone"]
    return out
