"""The ASGI application: routes, error handlers, static web app, and start-up wiring."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server import (
    accounts,
    exports,
    formats,
    image_bulk,
    image_objects,
    image_states,
    images,
    invitations,
    labels,
    offload,
    preferences,
    projects,
    stats,
)
from server.ai import classifiers, predictions, similarity, suggestions
from server.auth import TokenSigner, configure_password_hashing, redact_tokens_in_logs
from server.db import dispose, is_sqlite, make_engine, make_sessionmaker, transaction
from server.errors import ApiError, exception_handlers
from server.guards import Guard
from server.hub import endpoint as hub_endpoint
from server.hub.connection import CaptureSend
from server.jobs import routes as jobs_routes
from server.models import User
from server.schemas import UserIn
from server.settings import Settings, get_settings
from server.telemetry import routes as telemetry_routes
from server.telemetry.logs import RequestId

log = logging.getLogger("labelhub")
WEB_DIR = Path(__file__).resolve().parent.parent / "client" / "web"

# Feature modules: each has ``routes`` and may have ``lifespan(app)``, an async context
# manager run at start-up (after the database is ready) and left at shutdown.
# The jobs feed needs the hub: it comes after hub_endpoint.
FEATURES: list[ModuleType] = [accounts, invitations, projects, images, image_bulk, image_objects,
                              image_states, labels, preferences, formats, stats, hub_endpoint,
                              jobs_routes, similarity, suggestions, classifiers, predictions,
                              exports, telemetry_routes]


async def healthz(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def ensure_admin(app: Starlette) -> None:
    """Create the first site admin from the settings when no user exists yet."""
    settings: Settings = app.state.settings
    if not settings.admin_email or not settings.admin_password:
        return
    try:
        async with transaction(app.state.sessions) as session:
            count = (await session.execute(select(func.count()).select_from(User))).scalar_one()
            if count == 0:
                await accounts.create_user_row(
                    session, UserIn(email=settings.admin_email, password=settings.admin_password,
                                    name="Admin", is_admin=True)
                )
                log.info("created site admin %s", settings.admin_email)
    except (ApiError, IntegrityError):
        # Two processes started on an empty database at once and the other one won: its row
        # stands (the email is unique), and that is all this wanted.
        log.info("site admin %s was created by another process", settings.admin_email)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.ensure_data_dir()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redact_tokens_in_logs()  # here: after the server configured its loggers
        url = settings.resolved_database_url
        engine = make_engine(url) if is_sqlite(url) else make_engine(
            url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout)
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        try:  # a failed start disposes the engine too (no connection left to the collector)
            await ensure_admin(app)
            offload.configure(settings.offload_workers, settings.offload_queue,
                              split_cores=settings.cpu_split)
            hooks = [m.lifespan for m in FEATURES if hasattr(m, "lifespan")]
            async with _run_hooks(app, hooks):
                yield
        finally:
            offload.shutdown()
            await dispose(engine)

    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    for module in FEATURES:
        routes += module.routes
    if WEB_DIR.is_dir():
        routes.append(Mount("/", app=StaticFiles(directory=WEB_DIR, html=True), name="web"))

    # Guard refuses cross-site writes and adds security headers (HTTP only). CaptureSend lets
    # the hub write frames without a task switch (server/hub/connection.py).
    app = Starlette(routes=routes, exception_handlers=exception_handlers, lifespan=lifespan,
                    middleware=[Middleware(RequestId),
                                Middleware(Guard, allowed_origins=settings.allowed_origins),
                                Middleware(CaptureSend)])
    app.state.settings = settings
    configure_password_hashing(settings.password_time_cost, settings.password_memory_kib)
    app.state.signer = TokenSigner(settings.resolved_secret_key(), settings.token_ttl_hours * 3600)
    return app


@asynccontextmanager
async def _run_hooks(app: Starlette, hooks: list[Any]) -> AsyncIterator[None]:
    if not hooks:
        yield
        return
    async with hooks[0](app), _run_hooks(app, hooks[1:]):
        yield
