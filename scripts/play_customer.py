"""Play a WhatsApp customer: sign and post a message to a bot's webhook, print the bot's replies.

With `make run` going, talk to its demo bot::

    python scripts/play_customer.py --demo --text hi

It reads the server's own settings (``FLOTILLA_HOST``, ``FLOTILLA_PORT``, ``FLOTILLA_DATA_DIR``,
``FLOTILLA_SANDBOX_PORT``, ``FLOTILLA_PUBLIC_URL``; see ``orchestrator.settings.Settings``), so
with the same environment as ``flotilla serve`` it finds the demo bot and the orchestrator.

Or any bot (here on port 8101, against the sandbox on 8090)::

    python scripts/play_customer.py --bot http://127.0.0.1:8101 --sandbox http://127.0.0.1:8090 \
        --app-secret "$APP_SECRET" --from +15550100001 --text "hello"
    python scripts/play_customer.py ... --payload sales:start_quiz --text "Take the quiz"
    python scripts/play_customer.py ... --bsuid BR.1502576394655843 --username @maria --text hi

The replies are what the sandbox Graph API recorded for that customer after the post.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.settings import Settings  # noqa: E402 - after the path fix above


def build_payload(args: argparse.Namespace) -> dict[str, Any]:
    """A Cloud API ``messages`` webhook body for one customer message."""
    wa_id = "".join(ch for ch in (args.sender or "") if ch.isdigit())
    profile: dict[str, Any] = {"name": args.name}
    if args.username:
        profile["username"] = args.username
    contact: dict[str, Any] = {"profile": profile}
    message: dict[str, Any] = {
        "id": f"wamid.play.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
    }
    if wa_id:
        contact["wa_id"] = wa_id
        message["from"] = wa_id
    if args.bsuid:
        contact["user_id"] = args.bsuid
        message["from_user_id"] = args.bsuid
    if args.payload:
        kind = "list_reply" if args.list else "button_reply"
        message["type"] = "interactive"
        message["interactive"] = {"type": kind, kind: {"id": args.payload, "title": args.text}}
    else:
        message["type"] = "text"
        message["text"] = {"body": args.text}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": args.phone_number_id,
                            },
                            "contacts": [contact],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


def describe(message: dict[str, Any]) -> str:
    """One reply as text, with its buttons or list rows."""
    payload = message.get("payload") or {}
    lines = [f"[{message.get('type')}] {message.get('text') or ''}"]
    interactive = payload.get("interactive") or {}
    action = interactive.get("action") or {}
    for button in action.get("buttons", []):
        reply = button.get("reply", {})
        lines.append(f"   ( {reply.get('title')} )  -> {reply.get('id')}")
    for section in action.get("sections", []):
        if section.get("title"):
            lines.append(f"   == {section['title']}")
        for row in section.get("rows", []):
            lines.append(f"   - {row.get('title')}  -> {row.get('id')}")
    return "\n".join(lines)


async def play(args: argparse.Namespace) -> int:
    """Post the message, then print what the sandbox recorded for the customer."""
    to = args.bsuid if not args.sender else "".join(ch for ch in args.sender if ch.isdigit())
    raw = json.dumps(build_payload(args)).encode()
    signature = "sha256=" + hmac.new(args.app_secret.encode(), raw, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{args.sandbox}/_sandbox/messages", params={"provider": "graph", "to": to}
        ) as resp:
            before = len((await resp.json())["messages"])
        async with session.post(
            f"{args.bot}/webhook",
            data=raw,
            headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
        ) as resp:
            print(f"webhook -> {resp.status} {await resp.text()}")
            if resp.status != 200:
                return 1
        deadline = time.monotonic() + args.wait
        seen = before
        while time.monotonic() < deadline:
            async with session.get(
                f"{args.sandbox}/_sandbox/messages", params={"provider": "graph", "to": to}
            ) as resp:
                messages = (await resp.json())["messages"]
            for message in messages[seen:]:
                print(describe(message))
            seen = max(seen, len(messages))
            await asyncio.sleep(0.2)
        if seen == before:
            print("(no reply recorded by the sandbox)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and play one customer message."""
    settings = Settings()
    demo_file = settings.data_dir / "demo-bot.json"
    orchestrator = (settings.public_url or settings.orchestrator_url).rstrip("/")
    sandbox = f"http://127.0.0.1:{settings.sandbox_port}"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--demo",
        nargs="?",
        const=str(demo_file),
        default="",
        help=f"talk to the `make run` demo bot (reads its secret from {demo_file}, i.e. "
        "FLOTILLA_DATA_DIR, and posts through the orchestrator's /hooks address)",
    )
    parser.add_argument(
        "--orchestrator",
        default=orchestrator,
        help=f"with --demo (default from FLOTILLA_HOST/FLOTILLA_PORT: {orchestrator})",
    )
    parser.add_argument("--bot", default="", help="bot base URL, e.g. http://127.0.0.1:8101")
    parser.add_argument(
        "--sandbox",
        default=sandbox,
        help=f"sandbox base URL (default from FLOTILLA_SANDBOX_PORT: {sandbox})",
    )
    parser.add_argument("--app-secret", default="", help="the bot's Meta app secret")
    parser.add_argument("--from", dest="sender", default="", help="customer phone")
    parser.add_argument("--bsuid", default="", help="customer BSUID (user_id)")
    parser.add_argument("--username", default="", help="WhatsApp username, e.g. @maria")
    parser.add_argument("--name", default="Test Customer", help="profile name")
    parser.add_argument("--text", default="hello")
    parser.add_argument("--payload", default="", help="button/list reply id (callback)")
    parser.add_argument("--list", action="store_true", help="send --payload as a list reply")
    parser.add_argument("--phone-number-id", default="106540352242922")
    parser.add_argument("--wait", type=float, default=2.0, help="seconds to collect replies")
    args = parser.parse_args(argv)
    if args.demo:
        try:
            with open(args.demo, encoding="utf-8") as fh:
                demo = json.load(fh)
        except FileNotFoundError:
            parser.error(
                f"no demo bot at {args.demo}: start the server (`make run`) with the same "
                "FLOTILLA_DATA_DIR, or give the file: --demo PATH"
            )
        args.app_secret = args.app_secret or demo["app_secret"]
        args.sandbox = demo.get("sandbox_url", args.sandbox)
        args.phone_number_id = demo.get("phone_number_id", args.phone_number_id)
        args.bot = args.bot or f"{args.orchestrator}/hooks/whatsapp/{demo['instance_id']}"
        args.sender = args.sender or "+15550100001"
    if not args.bot or not args.app_secret:
        parser.error("give --bot and --app-secret, or --demo")
    if not args.sender and not args.bsuid:
        parser.error("give --from (phone) or --bsuid")
    return asyncio.run(play(args))


if __name__ == "__main__":
    sys.exit(main())
