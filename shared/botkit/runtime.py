"""Bot process entry: ``run_bot(channel)`` (what every ``{kind}_bot/__main__.py`` calls).

Start: read the environment, fetch the config (with retry), open and migrate the SQLite file,
settle outbox rows left in ``sending``, serve the webhook + control API, replay unhandled inbox
rows, start the outbox worker and the token refresher, post ``started``.

SIGTERM/SIGINT: close the listener (no new requests), give in-flight handling and sends up to
~2.5 s, post ``stopping``, close everything, exit 0. Anything unfinished stays in the inbox/outbox
and is picked up on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from shared.botkit import desk, followups
from shared.botkit.context import BotContext
from shared.botkit.control import (
    CTX_KEY,
    control_auth_middleware,
    control_routes,
    request_id_middleware,
)
from shared.botkit.inbox import InboxWorker
from shared.botkit.outbox import OutboxWorker
from shared.botkit.scheduler import TEST_CLOCK_ENV, OffsetClock, Scheduler
from shared.botkit.settings import BotSettings, SettingsError
from shared.botkit.spec import ChannelSpec
from shared.logging import setup_json_logging
from shared.orchestrator_client import OrchestratorClient, OrchestratorError
from shared.store import BotStore

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
INBOX_GRACE_S = 1.5
OUTBOX_GRACE_S = 1.0


def build_app(ctx: BotContext) -> web.Application:
    """Build the bot's aiohttp app: the channel's webhook routes plus the control API.

    Bodies over 3 MB are refused with 413 by aiohttp itself when a handler reads them.
    """
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[request_id_middleware, control_auth_middleware],
    )
    app[CTX_KEY] = ctx
    app.add_routes(ctx.channel.routes(ctx))
    app.add_routes(control_routes())
    app.add_routes(desk.desk_routes())
    return app


def storage_problem(path: Path, exc: BaseException) -> str:
    """Say in plain words why the bot's database cannot be opened (shown as ``last_error``)."""
    folder = path.parent
    if folder.exists() and not os.access(folder, os.W_OK):
        return f"data directory {folder} is read-only or not writable ({exc})"
    try:
        if shutil.disk_usage(folder if folder.exists() else folder.parent).free == 0:
            return f"no space left in data directory {folder} ({exc})"
    except OSError:
        pass
    return f"cannot open database {path}: {exc}"


def create_context(
    channel: ChannelSpec,
    settings: BotSettings,
    config: dict[str, Any],
    *,
    http: aiohttp.ClientSession,
    client: OrchestratorClient | None,
    store: BotStore | None = None,
) -> BotContext:
    """Wire a :class:`BotContext` with its workers (also used by in-process tests)."""
    if store is None:
        store = BotStore.open(settings.data_dir / channel.db_filename(settings.instance_id))
    ctx = BotContext(
        settings=settings,
        channel=channel,
        config=config,
        store=store,
        adapter=channel.make_adapter(config, http),
        http=http,
        client=client,
    )
    ctx.inbox = InboxWorker(ctx)
    ctx.outbox = OutboxWorker(ctx)
    ctx.scheduler = build_scheduler(ctx)
    return ctx


def build_scheduler(ctx: BotContext) -> Scheduler:
    """The bot's durable scheduler with its job kinds (follow-up touches); it reads the
    context's clock at each use, so a test clock set later applies."""
    scheduler = Scheduler(ctx.store, lambda: ctx.clock())
    scheduler.register(followups.job_kind(ctx))
    scheduler.register(desk.job_kind(ctx))
    scheduler.after_commit = ctx.wake_outbox
    return scheduler


async def _run_start_hook(ctx: BotContext) -> None:
    """Run the channel's ``on_start`` hook; its failure is logged, never fatal."""
    try:
        await ctx.channel.on_start(ctx)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.warning(
            "channel start hook failed", extra={"error": f"{type(exc).__name__}: {exc}"}
        )


async def serve(channel: ChannelSpec, settings: BotSettings) -> int:
    """Run the bot until SIGTERM/SIGINT; return the process exit code."""
    client = OrchestratorClient(settings.orchestrator_url, settings.internal_token,
                                settings.instance_id)
    try:
        config = await client.fetch_config()
    except OrchestratorError as exc:
        logger.error("cannot fetch config", extra={"error": str(exc)})
        await client.close()
        return 2
    port = settings.port or int(config.get("webhook_port") or 0)
    if not port:
        logger.error("no port: set BOT_PORT or the instance's webhook_port")
        await client.close()
        return 2

    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        ctx = create_context(channel, settings, config, http=http, client=client)
    except (sqlite3.Error, OSError) as exc:
        # A read-only or full data directory: say so, to the log and to the orchestrator (which
        # shows it as the bot's last error), and exit instead of dying with a traceback.
        reason = storage_problem(settings.data_dir / channel.db_filename(settings.instance_id),
                                 exc)
        logger.error("cannot open the bot database", extra={"error": reason})
        await client.post_event("error", reason)
        await http.close()
        await client.close()
        return 4
    if os.environ.get(TEST_CLOCK_ENV) == "1":
        # Test-only: a clock the control API can move forward (POST /control/clock).
        ctx.clock = OffsetClock()
        logger.warning("test clock enabled (FLOTILLA_TEST_CLOCK=1); never use in production")
    hold = channel.confirm_hold(config)
    resent, settled = ctx.store.outbox_recover(now=ctx.clock(), hold=hold)
    if resent or settled:
        logger.warning(
            "outbox rows interrupted by a crash settled",
            extra={"resent": resent, "marked_sent": settled,
                   "confirm_hold_s": hold.total_seconds()},
        )

    runner = web.AppRunner(build_app(ctx), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, port, reuse_address=True, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        logger.error("cannot listen", extra={"port": port, "error": str(exc)})
        await client.post_event("error", f"cannot listen on port {port}: {exc}")
        await runner.cleanup()
        await http.close()
        await client.close()
        ctx.store.close()
        return 3

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    assert ctx.inbox is not None  # noqa: S101 - set by create_context
    assert ctx.outbox is not None  # noqa: S101 - set by create_context
    assert ctx.scheduler is not None  # noqa: S101 - set by create_context
    ctx.scheduler.recover()
    ctx.inbox.replay()
    scheduler_task = asyncio.create_task(ctx.scheduler.run(), name="scheduler")
    outbox_task = asyncio.create_task(ctx.outbox.run(), name="outbox")
    start_hook = asyncio.create_task(_run_start_hook(ctx), name="on-start")
    refresher = asyncio.create_task(client.run_token_refresher(stop), name="token-refresh")
    lifecycle = asyncio.create_task(desk.run_lifecycle(ctx, stop), name="lifecycle")
    logger.info("bot started", extra={"port": port, "pid": os.getpid(), "kind": channel.kind})
    await client.post_event("started", "bot started", {"pid": os.getpid(), "port": port})

    await stop.wait()
    logger.info("stopping")
    await site.stop()  # stop accepting: the listener closes first
    await ctx.scheduler.stop()
    await asyncio.gather(ctx.inbox.stop(INBOX_GRACE_S), ctx.outbox.stop(OUTBOX_GRACE_S))
    outbox_task.cancel()
    refresher.cancel()
    start_hook.cancel()
    scheduler_task.cancel()
    lifecycle.cancel()
    for task in (outbox_task, refresher, start_hook, scheduler_task, lifecycle):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.post_event("stopping", "bot stopping"), 0.5)
    await runner.cleanup()
    await http.close()
    await client.close()
    ctx.store.close()
    logger.info("stopped")
    return 0


def run_bot(channel: ChannelSpec) -> None:
    """Entry point of a bot subprocess (``python -m {kind}_bot``); never returns.

    Reads ``BOT_INSTANCE_ID``/``WA_INSTANCE_ID``, ``BOT_INTERNAL_TOKEN``/``WA_INTERNAL_TOKEN``,
    ``ORCHESTRATOR_URL``, ``BOT_CONTROL_KEY``, ``BOT_DATA_DIR``, ``BOT_PORT``, ``BOT_HOST``,
    ``BOT_LOG_LEVEL``. Exits 0 after a graceful stop, 2 on missing settings or config, 3 when the
    port cannot be bound, 4 when the database cannot be opened (read-only or full data dir).
    """
    try:
        settings = BotSettings.from_env(channel.kind)
    except SettingsError as exc:
        setup_json_logging(os.environ.get("BOT_INSTANCE_ID"))
        logger.error("bad environment", extra={"error": str(exc)})
        sys.exit(2)
    setup_json_logging(settings.instance_id, settings.log_level)
    code = asyncio.run(serve(channel, settings))
    logging.shutdown()
    sys.exit(code)
