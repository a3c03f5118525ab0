"""Full collections paced by the clock (server/_gc.py): CPython starts none while paced; one
runs when due, on the pacing task's schedule."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from server import _gc


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def _survivors(n: int = 100_000) -> list[list[int]]:
    """Containers that live on: enough for more than ten collections of generation 1 (whether
    CPython itself would then make a full one also depends on how many objects are old)."""
    return [[i] for i in range(n)]


def test_paced_cpython_starts_no_full_collection_and_one_runs_when_due(
        thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    assert _gc.pace() == 10 and gc.get_threshold() == (700, 10, _gc.FULL_OFF)
    assert _gc.pace() == _gc.CPYTHON_FULL  # paced twice: CPython's default to go back to
    full = gc.get_stats()[2]["collections"]
    kept = _survivors()
    assert gc.get_stats()[2]["collections"] == full and gc.get_count()[2] >= 10
    assert _gc.collect_if_due(10)
    assert gc.get_stats()[2]["collections"] == full + 1 and gc.get_count()[2] == 0
    assert not _gc.collect_if_due(10)  # not due again yet
    _gc.unpace(10)
    assert gc.get_threshold() == (700, 10, 10) and len(kept) == 100_000


async def test_the_pacing_task_collects_on_its_schedule(
        thresholds: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    called = asyncio.Event()
    asked: list[int] = []

    def collect_if_due(threshold: int) -> bool:
        asked.append(threshold)
        called.set()
        return False

    monkeypatch.setattr(_gc, "collect_if_due", collect_if_due)
    task = asyncio.ensure_future(_gc.paced_collections(0.01, 7))
    try:
        await asyncio.wait_for(called.wait(), 30)
    finally:
        task.cancel()
    assert asked[0] == 7
    with pytest.raises(asyncio.CancelledError):
        await task
