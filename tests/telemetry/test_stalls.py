"""The loop watch (server/telemetry/stalls.py): a stall is measured and named by its frames,
log lines are rate-limited, and collections are timed."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from prometheus_client import REGISTRY

from server.telemetry.stalls import LoopWatch, Stall, summarize


def _block_the_loop(watch: LoopWatch) -> None:
    # Holds the loop's thread until the watchdog has sampled it here (not a timed sleep).
    watch.sampled.clear()
    assert watch.sampled.wait(timeout=60)


async def _stall(watch: LoopWatch, stalls: list[Stall], count: int) -> None:
    loop = asyncio.get_running_loop()
    reported = asyncio.Event()

    def heard(stall: Stall) -> None:  # in the watchdog thread
        # Only the stalls this test made: on a loaded machine the loop can also be late
        # elsewhere (starting the watchdog's thread, say), and those are reported too.
        if "_block_the_loop" in stall.describe():
            stalls.append(stall)
            loop.call_soon_threadsafe(reported.set)

    watch.on_stall = heard
    for _ in range(count):
        reported.clear()
        _block_the_loop(watch)
        await reported.wait()


async def test_a_stall_is_measured_and_names_the_frames_it_was_in(
        caplog: pytest.LogCaptureFixture) -> None:
    lag_before = REGISTRY.get_sample_value("labelhub_event_loop_lag_seconds_count") or 0.0
    watch = LoopWatch(interval=0.005, log_after=0.02, log_every=3600)
    stalls: list[Stall] = []
    watch.start()
    try:
        with caplog.at_level(logging.WARNING, logger="labelhub.stalls"):
            await _stall(watch, stalls, 2)
    finally:
        watch.stop()
    assert len(stalls) == 2 and all(s.seconds >= 0.02 for s in stalls)
    top, _count = stalls[0].stacks[0]
    assert any("_block_the_loop" in frame for frame in top)
    assert "_block_the_loop" in stalls[0].describe()
    # One line for the two stalls: the second falls within log_every of the first.
    # (Even on a machine booted less than log_every ago: the monotonic clock is near zero there.)
    lines = [r.getMessage() for r in caplog.records if r.name == "labelhub.stalls"]
    assert len(lines) == 1 and "event loop stalled" in lines[0]
    assert (REGISTRY.get_sample_value("labelhub_event_loop_lag_seconds_count") or 0) > lag_before


async def test_collections_are_timed_while_watching_and_not_after() -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("labelhub_gc_pause_seconds_count",
                                         {"generation": "2"}) or 0.0

    watch = LoopWatch()
    watch.start()
    try:
        before = count()
        gc.collect()
        assert count() == before + 1
    finally:
        watch.stop()
    after = count()
    gc.collect()
    assert count() == after
    watch.stop()  # a second stop is harmless


def test_summarize_keeps_the_stacks_seen_most() -> None:
    a, b, c = ("x.py:1 f",), ("y.py:2 g",), ("z.py:3 h",)
    assert summarize([a, b, b, c, b, a], keep=2) == [(b, 3), (a, 2)]
    assert summarize([]) == []
    assert "no Python frame" in Stall(0.2).describe()


def test_the_first_stall_is_logged_whatever_the_clock_reads(caplog: pytest.LogCaptureFixture) -> None:
    # log_every longer than the monotonic clock has run: a machine booted minutes ago, scaled up.
    watch = LoopWatch(log_every=1e12)
    with caplog.at_level(logging.WARNING, logger="labelhub.stalls"):
        watch._report(Stall(0.25))
        watch._report(Stall(0.5))
    lines = [r.getMessage() for r in caplog.records if r.name == "labelhub.stalls"]
    assert lines == ["event loop stalled 250 ms (no Python frame sampled: C code, a collection, "
                     "or the process was not scheduled)"]
