"""Routes: ``GET /metrics`` (Prometheus) and ``GET /readyz`` (database and storage reachable).

``/healthz`` (in server/app.py) says the process is up; ``/readyz`` says it can do its work, so a
load balancer sends nobody to a process whose database or image store is gone. Gauges are
sampled here (every few seconds, and on each scrape for this process) instead of on the hub's
hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import ApiError
from server.models import ImageLock, Job, utcnow
from server.telemetry import metrics

__all__ = ["lifespan", "routes", "sample"]

log = logging.getLogger("labelhub.telemetry")
SAMPLE_SECONDS = 5.0
STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _sample_sockets(state: Any) -> None:
    hub = getattr(state, "hub", None)
    if hub is None:
        return
    conns = [c for group in hub.sockets.values() for c in group]
    metrics.CONNECTIONS.set(len(conns))
    depths = [len(c.backlog) for c in conns]
    metrics.FANOUT_QUEUE.set(sum(depths))
    metrics.FANOUT_QUEUE_MAX.set(max(depths, default=0))


async def sample(state: Any) -> None:
    """Set the gauges from this process's sockets and from the database."""
    _sample_sockets(state)
    async with state.sessions() as session:
        now = utcnow()
        locks = (await session.execute(select(func.count()).select_from(ImageLock).where(
            ImageLock.holder_id.is_not(None), ImageLock.expires_at > now))).scalar_one()
        rows = (await session.execute(select(Job.status, func.count()).group_by(Job.status))).all()
    by_status = {status: count for status, count in rows}
    metrics.LOCKS.set(locks)
    for status in STATUSES:
        metrics.JOBS.labels(status=status).set(by_status.get(status, 0))


async def metrics_endpoint(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "unauthorized", "the metrics need 'Authorization: Bearer <token>'")
    try:
        await asyncio.wait_for(sample(request.app.state), timeout=2.0)
    except Exception:  # a database hiccup must not hide the other metrics
        log.warning("metrics sampling failed", exc_info=True)
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)


async def readyz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        async with state.sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=3.0)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["storage"] = await _storage_check(request)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _storage_check(request: Request) -> str:
    """Write and remove a small object: a missing, read-only or full disk, or an S3 store that
    does not answer or refuses, answers with an error."""
    from server.images import image_store
    from server.storage import StorageUnavailable

    store = image_store(request)
    key = f"readyz/{os.getpid()}"
    try:
        await asyncio.wait_for(store.put_many([(key, b"ok")]), timeout=5.0)
        await asyncio.wait_for(store.delete_many([key]), timeout=5.0)
    except StorageUnavailable as exc:
        return f"unreachable: {exc}"
    except (OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return "ok"


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                await sample(app.state)
            except Exception:
                log.warning("metrics sampling failed", exc_info=True)
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.get_running_loop().create_task(loop()) if metrics.multiprocess_dir() else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


routes = [
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
