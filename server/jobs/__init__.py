"""Durable background jobs: long work runs in worker processes, never on the server's loop.

A route (or a task) calls :func:`defer` inside its transaction; a worker (``labelhub worker``,
:class:`Worker`) claims the job, runs the function registered for its kind with :func:`task`,
renews its lease while it runs, and records the end. Progress and status changes reach the
project's sockets as ``job`` events. See docs/api.md for the REST endpoints.

::

    from server.jobs import JobContext, task

    @task("embed")
    async def embed(ctx: JobContext) -> dict[str, Any] | None:
        for i, image in enumerate(todo):
            ...                                   # skip what an earlier run already stored
            await ctx.progress(i + 1, len(todo))  # raises Cancelled when cancelled
        return {"embedded": len(todo)}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.jobs.registry import TASK_MODULES, TaskFn, task
from server.jobs.status import ACTIVE, FINAL, Status

if TYPE_CHECKING:
    from server.jobs.context import Cancelled, JobContext
    from server.jobs.queue import defer

__all__ = [
    "ACTIVE", "FINAL", "TASK_MODULES", "Cancelled", "JobContext", "Status", "TaskFn", "defer",
    "task",
]

# Imported on first use, so that the pure rules (``server.jobs.status``) and the registry load
# without the database layer (tests/geometry/test_imports.py).
_LAZY = {"Cancelled": "server.jobs.context", "JobContext": "server.jobs.context",
         "defer": "server.jobs.queue"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'server.jobs' has no attribute {name!r}")
