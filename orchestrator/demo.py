"""`make run` extras: the sandbox providers in-process and a demo WhatsApp bot wired to them."""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import replace

from fastapi import FastAPI
from sqlmodel import Session

from orchestrator import crud
from orchestrator.schemas import InstanceCreate

logger = logging.getLogger(__name__)

DEMO_NAME = "Demo Shop"


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
