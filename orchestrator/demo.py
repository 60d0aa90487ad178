"""`make run` extras: the sandbox providers in-process and a demo WhatsApp bot wired to them.

The demo bot speaks for a made-up neutral business (a bookshop): the ``documents`` template
filled with its profile, and its own small knowledge base built from
``orchestrator/demo_data/lighthouse-books.md`` in the background after start (the server is
ready at once; the base is linked to the bot when its document is indexed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from dataclasses import replace
from importlib import resources
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from orchestrator import crud
from orchestrator.models import BotInstance, KnowledgeBase, utcnow
from orchestrator.schemas import InstanceCreate
from shared.funnel.templates import BusinessProfile, TemplateError, with_topics

logger = logging.getLogger(__name__)

DEMO_NAME = "Lighthouse Books"
DEMO_BUSINESS = BusinessProfile(
    name=DEMO_NAME,
    about="An independent bookshop by the harbour: new and second-hand books and a reading café.",
    hours="Mon–Sat 9:00–19:00, Sun 11:00–17:00",
    timezone="Europe/Dublin",
    language="en",
    currency="EUR",
    contact="hello@lighthouse-books.example",
)
DEMO_DOCUMENT = "lighthouse-books.md"
DEMO_KB_NAME = "Lighthouse Books (demo)"


async def start_sandbox(app: FastAPI) -> None:
    """Serve the sandbox Graph/Twilio/Telegram APIs on ``FLOTILLA_SANDBOX_PORT``."""
    from shared.sandbox import Sandbox

    settings = app.state.settings
    sandbox = Sandbox(host="127.0.0.1", port=settings.sandbox_port)
    await sandbox.start()
    app.state.sandbox = sandbox
    logger.info("sandbox providers up", extra={"url": sandbox.url})


async def stop_sandbox(app: FastAPI) -> None:
    """Stop the in-process sandbox."""
    sandbox = getattr(app.state, "sandbox", None)
    if sandbox is not None:
        await sandbox.stop()


async def ensure_demo_bot(app: FastAPI) -> None:
    """On an empty install, create an auto-starting WhatsApp bot that talks to the sandbox.

    Its app secret and verify token go to ``<data dir>/demo-bot.json`` (0600) so
    ``scripts/play_customer.py --demo`` can sign messages as Meta would.
    """
    settings = app.state.settings
    # The demo bot is the admin's choice (FLOTILLA_DEMO_BOT): it may use the sandbox's URL.
    rules = crud.InstanceRules.from_settings(settings)
    sandbox_url = f"http://127.0.0.1:{settings.sandbox_port}"
    demo_rules = replace(rules, allowed_provider_urls=(*rules.allowed_provider_urls, sandbox_url))
    with Session(app.state.engine) as session:
        if crud.list_instances(session=session):
            _resume_demo_knowledge(app)
            return
        admin = crud.get_user_by_username(session=session, username="admin")
        app_secret = secrets.token_hex(16)
        verify_token = secrets.token_hex(8)
        instance = crud.create_instance(
            session=session,
            kind="whatsapp",
            instance_in=InstanceCreate(
                name=DEMO_NAME,
                phone_number_id="100000000000001",
                waba_id="200000000000001",
                access_token="sandbox-" + secrets.token_hex(16),
                verify_token=verify_token,
                app_secret=app_secret,
                graph_api_base_url=f"http://127.0.0.1:{settings.sandbox_port}/graph",
                auto_start=True,
                template="documents",
                business=DEMO_BUSINESS,
            ),
            owner_id=admin.id if admin else None,
            box=app.state.box,
            rules=demo_rules,
        )
        instance_id = instance.id
        crud.audit(
            session=session,
            actor=None,
            action="instance.create_demo",
            object_type="whatsapp",
            object_id=instance_id,
        )
    path = settings.data_dir / "demo-bot.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {
                "instance_id": instance_id,
                "kind": "whatsapp",
                "app_secret": app_secret,
                "verify_token": verify_token,
                "phone_number_id": "100000000000001",
                "sandbox_url": f"http://127.0.0.1:{settings.sandbox_port}",
            },
            fh,
        )
    logger.info("demo bot created", extra={"bot_id": instance_id})
    start_demo_knowledge(app, instance_id)


def _resume_demo_knowledge(app: FastAPI) -> None:
    """A restart before the demo's base was built (or after it failed) builds it again."""
    path = app.state.settings.data_dir / "demo-bot.json"
    try:
        instance_id = str(json.loads(path.read_text())["instance_id"])
    except (OSError, ValueError, KeyError):
        return
    with Session(app.state.engine) as session:
        bot = session.get(BotInstance, instance_id)
        config = (bot.config or {}) if bot is not None else {}
        if bot is None or config.get("knowledge_base_ids") or not config.get("template"):
            return
    start_demo_knowledge(app, instance_id)


def start_demo_knowledge(app: FastAPI, instance_id: str) -> asyncio.Task[str | None]:
    """Build the demo's knowledge base in the background (cancelled at shutdown)."""
    task = asyncio.create_task(build_demo_knowledge(app, instance_id))

    async def _cancel(_app: FastAPI) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    app.state.demo_knowledge_task = task
    app.state.shutdown_hooks.append(_cancel)
    return task


async def build_demo_knowledge(app: FastAPI, instance_id: str) -> str | None:
    """Create the demo's knowledge base, index its document and link it to the demo bot.

    Waits for the start-up warm-up (the embedding model) first, so the two do not load it
    twice. Returns the base's id, or ``None`` when it could not be built (logged; the bot
    still greets and hands over to a person).
    """
    holder = app.state.ai
    await asyncio.sleep(0.2)  # let the warm-up hook start
    while holder.warming:  # noqa: ASYNC110 - the holder keeps a flag, not an event
        await asyncio.sleep(0.5)
    data = resources.files("orchestrator").joinpath("demo_data", DEMO_DOCUMENT).read_bytes()
    try:
        ai: Any = await asyncio.to_thread(holder.get)
        with Session(app.state.engine) as session:
            kb_id = crud.new_random_id(session=session, kind="kb")
            admin = crud.get_user_by_username(session=session, username="admin")
            owner_id = admin.id if admin else None
        await ai.kb.create(DEMO_KB_NAME, kb_id=kb_id)
        with Session(app.state.engine) as session:
            session.add(
                KnowledgeBase(id=kb_id, name=DEMO_KB_NAME, owner_id=owner_id, created_at=utcnow())
            )
            session.commit()
        await ai.kb.add_document(kb_id, DEMO_DOCUMENT, data)
        topics = await ai.kb.topics(kb_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a missing model, a full disk: the demo still runs without it
        logger.warning("demo knowledge base not built", extra={"error": str(exc)})
        return None
    with Session(app.state.engine) as session:
        bot = session.get(BotInstance, instance_id)
        if bot is None:
            return None
        linked = list((bot.config or {}).get("knowledge_base_ids") or [])
        config = {**(bot.config or {}), "knowledge_base_ids": [*linked, kb_id]}
        funnel = config.get("funnel")
        if isinstance(funnel, dict):  # the menu offers the document's topics
            language = str((config.get("business") or {}).get("language") or "en")
            try:
                config["funnel"] = with_topics(funnel, topics, language)
            except TemplateError as exc:
                logger.warning("demo topics menu not added", extra={"error": str(exc)})
        bot.config = config
        bot.updated_at = utcnow()
        session.add(bot)
        session.commit()
    supervisor = getattr(app.state, "supervisor", None)
    if supervisor is not None:  # a running demo bot takes its new menu at once
        with contextlib.suppress(Exception):
            await supervisor.reload(instance_id)
    logger.info("demo knowledge base ready", extra={"bot_id": instance_id, "kb_id": kb_id})
    return kb_id
