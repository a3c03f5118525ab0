"""Task functions by kind. The worker imports :data:`TASK_MODULES`; each registers with :func:`task`.

A task module stays importable without the worker (no side effects beyond registering), and
its functions must be resumable: a job whose worker died is claimed again and runs again from
the start of the function, so it skips work it already stored.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from server.jobs.context import JobContext

__all__ = ["TASK_MODULES", "IdleHook", "TaskFn", "get", "idle_hooks", "kinds", "load", "on_idle",
           "task"]

#: Modules whose import registers the tasks a worker can run.
TASK_MODULES: list[str] = ["server.jobs.builtin", "server.ai.tasks", "server.ai.model_jobs",
                           "server.ai.retrain", "server.formats._jobs"]

TaskFn = Callable[["JobContext"], Awaitable[dict[str, Any] | None]]
F = TypeVar("F", bound=TaskFn)
_TASKS: dict[str, TaskFn] = {}
#: Called by an idle worker at most every ``IDLE_EVERY`` seconds with its session maker: checks
#: that may defer jobs (auto-retrain). Keep them cheap; they must be safe when several run at once.
IdleHook = Callable[[Any], Awaitable[object]]
_IDLE: dict[str, IdleHook] = {}


def task(kind: str) -> Callable[[F], F]:
    """Register an async job function under ``kind`` (at most 32 characters, unique).

    Its return value (a JSON object or ``None``) becomes the job's ``result``.
    """
    if not 0 < len(kind) <= 32:
        raise ValueError(f"job kind must be 1-32 characters: {kind!r}")

    def register(fn: F) -> F:
        known = _TASKS.get(kind)
        if known is not None and known is not fn and (
                known.__module__, known.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"job kind {kind!r} is already registered by {known.__module__}")
        _TASKS[kind] = fn
        return fn

    return register


def on_idle(fn: IdleHook) -> IdleHook:
    """Register a check an idle worker runs now and then (once per function name)."""
    _IDLE[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def idle_hooks() -> list[IdleHook]:
    return list(_IDLE.values())


def load(modules: list[str] | None = None) -> None:
    """Import the task modules (registering their tasks)."""
    for name in TASK_MODULES if modules is None else modules:
        importlib.import_module(name)


def get(kind: str) -> TaskFn | None:
    return _TASKS.get(kind)


def kinds() -> list[str]:
    """The registered kinds, sorted: a worker claims only jobs it can run."""
    return sorted(_TASKS)
