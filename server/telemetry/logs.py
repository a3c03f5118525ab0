"""Log lines a log system can read: one JSON object per line, each with the request id.

The request id comes from the ``X-Request-ID`` header when a proxy sent a sane one (so one id
follows a request through nginx and the app), else a new one; it goes back in the response's
``X-Request-ID`` and onto every line logged while the request (or socket) is served, uvicorn's
access line included (it is written from inside the app's ``send``).

Lines are written by a thread of their own (:class:`BackgroundHandler`): the event loop only
queues a record, so a slow reader of stderr (a pipe to journald or a container runtime under
pressure) never holds up the hub, and a full queue drops records rather than wait.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BackgroundHandler", "JsonFormatter", "RequestId", "RequestIdFilter", "configure_logging",
           "current_request_id"]

_request_id: ContextVar[str | None] = ContextVar("labelhub_request_id", default=None)
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def current_request_id() -> str | None:
    return _request_id.get()


class RequestId:
    """ASGI middleware: a request id per HTTP request and per WebSocket connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                      if k == b"x-request-id"), "")
        rid = given if _SANE.fullmatch(given) else uuid.uuid4().hex
        token = _request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record, for either format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():  # what a caller passed with extra={...}
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class BackgroundHandler(QueueHandler):
    """Queues each record for a thread that hands it to ``target`` (a stream handler here).

    Filters run in the logging thread (the request id is read there), the formatter in the
    writing one (:meth:`setFormatter` goes to ``target``). A record keeps its exception for the
    formatter; its message is fixed when queued (its arguments may change afterwards). When
    ``capacity`` records wait, more are dropped and counted in :attr:`dropped`: logging never
    blocks the caller. :meth:`close` writes what is queued (``logging.shutdown`` calls it)."""

    def __init__(self, target: logging.Handler, capacity: int = 10_000) -> None:
        super().__init__(queue.Queue(capacity))
        self.target, self.capacity, self.dropped = target, capacity, 0
        self._listener: QueueListener | None = None
        self._pid = 0
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self.queue = queue.Queue(self.capacity)
        self._listener = _Listener(self.queue, self.target, respect_handler_level=True)
        self._listener.start()  # a daemon thread

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self.target.setFormatter(fmt)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self._listener is not None and self._pid != os.getpid():
            self._start()  # a forked child: it has the queue (maybe its lock, held), no thread
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()  # writes what is queued, then ends the thread
            self.target.close()
        super().close()


class _Listener(QueueListener):
    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)  # type: ignore[attr-defined]  # waits for room if full


def _stderr_handler(stream: Any) -> BackgroundHandler:
    """``logging.config``'s factory for the main handler."""
    return BackgroundHandler(logging.StreamHandler(stream))


def configure_logging(fmt: Literal["text", "json"], level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server and uvicorn (returned for ``log_config``)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"})
    handler = {"()": _stderr_handler, "formatter": "main", "filters": ["request_id"],
               "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "uvicorn": {"handlers": ["main"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["main"], "level": level.upper(), "propagate": False},
        },
        "root": {"handlers": ["main"], "level": level.upper()},
    }
