"""The orchestrator's FastAPI application factory."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_ui.routes import STATIC_DIR
from admin_ui.routes import router as admin_ui_router
from orchestrator.api.ai_deps import install_ai
from orchestrator.api.csrf import CsrfMiddleware
from orchestrator.api.deps import SESSION_COOKIE, user_for_token
from orchestrator.api.docs import install_docs
from orchestrator.api.headers import SecurityHeadersMiddleware
from orchestrator.api.limits import BodyLimitMiddleware
from orchestrator.api.routes import (
    ai,
    auth,
    channels,
    conversations,
    fleet,
    funnels,
    handovers,
    hooks,
    instances,
    knowledge,
    llm_providers,
    proposals,
    slugs,
    templates,
    users,
)
from orchestrator.crud import FieldError
from orchestrator.db import make_engine, migrate
from orchestrator.demo import ensure_demo_bot, start_sandbox, stop_sandbox
from orchestrator.internal import ai_routes as internal_ai_routes
from orchestrator.internal import routes as internal_routes
from orchestrator.security import SecretBox
from orchestrator.settings import Settings
from orchestrator.supervisor import Spawner, Supervisor, SupervisorError
from orchestrator.supervisor.leader import LeaderElector
from orchestrator.version import version_info
from shared.channels import registry as channel_registry
from shared.logging import request_id_var

logger = logging.getLogger(__name__)

Startup = Callable[[FastAPI], Awaitable[None]]


class RequestIdMiddleware:
    """Honour or make an ``X-Request-ID``, keep it in a contextvar, echo it in the response."""

    def __init__(self, app: ASGIApp, metrics: dict[str, Any]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for key, value in scope.get("headers", []):
            if key == b"x-request-id":
                rid = value.decode("latin-1")[:128]
                break
        rid = rid or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics["requests"].labels(scope["method"], path, str(status_code)).inc()
            self.metrics["latency"].labels(path).observe(time.perf_counter() - started)
            request_id_var.reset(token)


def check_metrics_access(request: Request, settings: Settings, engine: Engine) -> None:
    """Let ``/metrics`` answer only to the metrics token, else (none set) to an admin's token.

    Raises:
        HTTPException: 401 without an acceptable token, 403 for a signed-in non-admin.
    """
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else ""
    if settings.metrics_token:
        if not bearer or not hmac.compare_digest(bearer.encode(), settings.metrics_token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "metrics need Authorization: Bearer <FLOTILLA_METRICS_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    with Session(engine) as session:
        user = user_for_token(session, settings, bearer or request.cookies.get(SESSION_COOKIE))
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin role required")


def create_app(
    settings: Settings | None = None,
    *,
    run_migrations: bool = True,
    spawner: Spawner | None = None,
) -> FastAPI:
    """Build the orchestrator app: store, routes, supervisor and UI."""
    settings = settings or Settings()
    settings.ensure_dirs()
    # Channels from FLOTILLA_CHANNEL_PLUGINS join the shipped ones (shared.channels.registry).
    channel_registry.load_plugins()
    secret_key = settings.resolved_secret_key()
    if run_migrations:
        migrate(settings.database_url)
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in app.state.startup_hooks:
            await hook(app)
        try:
            yield
        finally:
            for hook in reversed(app.state.shutdown_hooks):
                try:
                    await hook(app)
                except Exception:
                    logger.exception("shutdown hook failed")
            engine.dispose()

    app = FastAPI(
        title="Flotilla orchestrator",
        version=version_info()["version"],
        description="Admin and internal API of a self-hosted fleet of chat bots.",
        lifespan=lifespan,
        # /docs and /redoc come from install_docs: local assets, no CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.box = SecretBox(secret_key)
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    app.state.bot_events = deque(maxlen=1000)
    supervisor = Supervisor(settings, engine, spawner)
    app.state.supervisor = supervisor
    # One replica leads (a PostgreSQL advisory lock; SQLite: always this one): what must run
    # once runs there (orchestrator/supervisor/leader.py).
    leader = LeaderElector(settings.database_url, poll_s=settings.leader_poll_s)
    supervisor.leader = leader
    app.state.leader = leader
    if settings.sandbox:
        app.state.startup_hooks.append(start_sandbox)
        app.state.shutdown_hooks.append(stop_sandbox)
    if settings.demo_bot:
        app.state.startup_hooks.append(ensure_demo_bot)

    async def _start_supervisor(app: FastAPI) -> None:
        await supervisor.startup()
        await leader.start()

    async def _stop_supervisor(app: FastAPI) -> None:
        await supervisor.shutdown()
        await leader.stop()

    app.state.startup_hooks.append(_start_supervisor)
    app.state.shutdown_hooks.append(_stop_supervisor)
    # The AI service is built on first use (models load later still): startup stays fast.
    install_ai(app, settings, engine, app.state.box)

    registry = CollectorRegistry()
    metrics: dict[str, Any] = {
        "registry": registry,
        "requests": Counter(
            "flotilla_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=registry,
        ),
        "latency": Histogram(
            "flotilla_http_request_seconds", "HTTP latency", ["route"], registry=registry
        ),
    }
    app.state.metrics = metrics
    # Outermost last: request id → security headers → body limits → CSRF → routes.
    app.add_middleware(CsrfMiddleware, settings=settings)
    app.add_middleware(BodyLimitMiddleware, settings=settings, engine=engine)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware, metrics=metrics)

    @app.exception_handler(SupervisorError)
    async def _supervisor_error(_request: Request, exc: SupervisorError) -> JSONResponse:
        # What the supervisor could not do (e.g. the Kubernetes API is unreachable: 503).
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    @app.exception_handler(FieldError)
    async def _field_error(_request: Request, exc: FieldError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": exc.loc, "msg": exc.msg, "type": "value_error"}]},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            errors.append(
                {
                    "loc": list(err.get("loc", [])),
                    "msg": str(err.get("msg", "")),
                    "type": str(err.get("type", "")),
                }
            )
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(Exception)
    async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return JSONResponse(
            status_code=500,
            content={"detail": "internal error", "request_id": request_id_var.get()},
        )

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness: the process answers and its database is reachable; ``models`` is
        ``warming`` while the AI models load in the background after start, then ``ready``;
        ``leader`` says whether this replica runs the jobs that must run once."""
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        warming = app.state.ai.warming
        return {
            "status": "ok",
            "models": "warming" if warming else "ready",
            "leader": leader.is_leader,
        }

    @app.get("/version", tags=["meta"])
    def version() -> dict[str, str]:
        """Package version, git commit and build time."""
        return version_info()

    @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse)
    def prometheus_metrics(request: Request) -> PlainTextResponse:
        """Prometheus metrics: ``Authorization: Bearer <FLOTILLA_METRICS_TOKEN>``, or an admin's
        token when no metrics token is set."""
        check_metrics_access(request, settings, engine)
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(channels.router)
    app.include_router(instances.router)
    app.include_router(fleet.router)
    app.include_router(funnels.router)
    app.include_router(templates.router)
    app.include_router(slugs.router)
    app.include_router(knowledge.router)
    app.include_router(llm_providers.router)
    app.include_router(ai.router)
    app.include_router(internal_routes.router)
    app.include_router(internal_ai_routes.router)
    app.include_router(hooks.router)
    app.include_router(conversations.router)
    app.include_router(handovers.router)
    app.include_router(proposals.router)
    app.include_router(admin_ui_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)
    return app
