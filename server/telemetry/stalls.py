"""Event-loop stalls and garbage-collection pauses, as metrics and as log lines that say where.

Every hub latency goal is lost the same way: the one thread that runs the event loop does
something else for tens of milliseconds. This module makes that visible in production, not only
in benchmarks:

- a watchdog thread asks the loop to run a no-op every ``interval`` and measures how late it ran
  (``labelhub_event_loop_lag_seconds``); while the loop is later than ``log_after``, it samples
  the loop thread's Python stack (``sys._current_frames``) and then logs the stall with the
  frames it saw most (at most one line per ``log_every`` seconds, the count of the rest with it);
- a ``gc.callbacks`` hook times every collection of the cyclic garbage collector
  (``labelhub_gc_pause_seconds{generation}``): a full collection stops the loop for as long as
  it walks every long-lived object (server/cli.py freezes what startup made for that reason).

The watchdog costs the loop one no-op callback per ``interval`` (20 ms by default). What is
pure — which frames a stall report names — is :func:`summarize`; the rest is a thread.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from server.telemetry.metrics import GC_PAUSE, LOOP_LAG

__all__ = ["LoopWatch", "Stall", "summarize"]

log = logging.getLogger("labelhub.stalls")

_DEPTH = 8  # frames kept per sample: enough to name the caller of a slow library call


@dataclass
class Stall:
    """One time the loop ran a callback ``seconds`` late, and the stacks seen meanwhile
    (innermost frame first, ``file:line function``), most frequent first, with their counts."""

    seconds: float
    stacks: list[tuple[tuple[str, ...], int]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.stacks:
            return (f"event loop stalled {self.seconds * 1e3:.0f} ms (no Python frame sampled: "
                    "C code, a collection, or the process was not scheduled)")
        top, count = self.stacks[0]
        samples = sum(n for _, n in self.stacks)
        return (f"event loop stalled {self.seconds * 1e3:.0f} ms; in {count} of {samples} "
                f"samples at: {' < '.join(top)}")


def _stack(frame: FrameType | None) -> tuple[str, ...]:
    out: list[str] = []
    while frame is not None and len(out) < _DEPTH:
        code = frame.f_code
        out.append(f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return tuple(out)


def summarize(samples: Iterable[tuple[str, ...]], keep: int = 3) -> list[tuple[tuple[str, ...], int]]:
    """The ``keep`` stacks seen most often, with their counts (ties: first seen first)."""
    return collections.Counter(samples).most_common(keep)


class LoopWatch:
    """Watch the running loop of the thread that calls :meth:`start` (see the module doc).
    ``on_stall`` is called in the watchdog thread with each stall past ``log_after``."""

    def __init__(self, *, interval: float = 0.02, log_after: float = 0.1,
                 log_every: float = 10.0, on_stall: Callable[[Stall], Any] | None = None) -> None:
        self.interval = interval
        self.log_after = log_after
        self.log_every = log_every
        self.on_stall = on_stall
        self._stop = threading.Event()
        #: Set once the watchdog has sampled the loop thread's stack during a stall.
        self.sampled = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._gc_started: list[float] = []
        # Not 0.0: the monotonic clock may start near zero (a machine booted minutes ago), and
        # the first stall must be logged whatever the clock reads.
        self._last_log = -math.inf
        self._unlogged = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        gc.callbacks.append(self._gc)
        self._thread = threading.Thread(target=self._run, name="labelhub-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        # Collections run in whichever thread allocates; only the loop's thread stalls the loop,
        # but every pause is a pause of some request.
        if phase == "start":
            self._gc_started.append(time.perf_counter())
        elif self._gc_started:
            GC_PAUSE.labels(generation=str(info["generation"])).observe(
                time.perf_counter() - self._gc_started.pop())

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            ran = threading.Event()
            started = time.perf_counter()
            try:
                loop.call_soon_threadsafe(ran.set)
            except RuntimeError:  # the loop is closed: nothing left to watch
                return
            samples: list[tuple[str, ...]] = []
            while not ran.wait(self.interval):
                if self._stop.is_set():
                    return
                if time.perf_counter() - started >= self.log_after:
                    samples.append(_stack(sys._current_frames().get(self._loop_thread)))
                    self.sampled.set()
            lag = time.perf_counter() - started
            LOOP_LAG.observe(lag)
            if lag >= self.log_after:
                self._report(Stall(lag, summarize(s for s in samples if s)))
            self._stop.wait(self.interval)

    def _report(self, stall: Stall) -> None:
        now = time.monotonic()
        if now - self._last_log >= self.log_every:
            more = f" ({self._unlogged} more since the last line)" if self._unlogged else ""
            log.warning("%s%s", stall.describe(), more)
            self._last_log, self._unlogged = now, 0
        else:
            self._unlogged += 1
        if self.on_stall is not None:
            self.on_stall(stall)
