"""server/telemetry/logs.py: log lines are written by a thread, never by the caller."""

from __future__ import annotations

import io
import json
import logging
import os
import threading

from server.telemetry.logs import (
    BackgroundHandler,
    JsonFormatter,
    RequestIdFilter,
    configure_logging,
)


class _Gate(logging.Handler):
    """Holds every record until ``open`` is set; remembers which thread emitted it."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.entered = threading.Event()
        self.lines: list[str] = []
        self.threads: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.open.wait()
        self.threads.add(threading.get_ident())
        self.lines.append(self.format(record))


def test_the_caller_never_waits_for_the_writer_and_a_full_queue_drops() -> None:
    gate = _Gate()
    handler = BackgroundHandler(gate, capacity=2)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    log = logging.Logger("labelhub.test_logs")
    log.addHandler(handler)
    try:
        log.info("first %s", "line")
        gate.entered.wait()  # the writer holds the first record: the queue is empty now
        arg = ["mutable"]
        for i in range(10):  # the writer is stuck, yet every call returns
            log.warning("line %d %s", i, arg)
        arg.append("changed later")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")  # dropped too: the queue is full
        assert handler.dropped == 9  # two of the ten wait in the queue
        gate.open.set()
    finally:
        handler.close()  # writes what waits
    assert threading.get_ident() not in gate.threads
    lines = [json.loads(line) for line in gate.lines]
    assert [line["message"] for line in lines] == [
        "first line", "line 0 ['mutable']", "line 1 ['mutable']"]
    assert all("request_id" in line for line in lines)


def test_an_exception_reaches_the_formatter_in_the_writing_thread() -> None:
    stream = io.StringIO()
    handler = BackgroundHandler(logging.StreamHandler(stream))
    handler.setFormatter(JsonFormatter())
    log = logging.Logger("labelhub.test_logs.exc")
    log.addHandler(handler)
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("lookup %s failed", "x", extra={"image": 7})
    handler.close()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "lookup x failed" and line["image"] == 7
    assert "KeyError: 'missing'" in line["exception"]


def test_the_server_configuration_writes_through_a_background_handler() -> None:
    """The main handler of ``configure_logging`` (``serve`` and ``worker`` use it; a real
    ``serve`` writing JSON lines through it: tests/telemetry/test_serve.py)."""
    spec = configure_logging("json")["handlers"]["main"]
    assert spec["filters"] == ["request_id"] and spec["stream"] == "ext://sys.stderr"
    stream = io.StringIO()
    handler = spec["()"](stream=stream)
    assert isinstance(handler, BackgroundHandler)
    handler.setFormatter(JsonFormatter())
    log = logging.Logger("labelhub.test_logs.config")
    log.addHandler(handler)
    log.info("hello %s", "there")
    handler.close()
    assert json.loads(stream.getvalue())["message"] == "hello there"


def test_a_forked_child_writes_through_a_thread_of_its_own() -> None:
    """After ``fork`` the child has the queue but not the writing thread: its first record
    starts one (and a new queue, whose lock no other thread can hold)."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        handler = BackgroundHandler(logging.StreamHandler(stream))
        log = logging.Logger("labelhub.test_logs.fork")
        log.addHandler(handler)
        # Forked while the writer waits for a record (holding no lock of the stream's).
        child = os.fork()
        if child == 0:  # pragma: no cover - in the child
            log.info("child")
            handler.close()
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        log.info("parent")
        handler.close()
    with os.fdopen(read_end) as lines:
        assert sorted(lines.read().splitlines()) == ["child", "parent"]
