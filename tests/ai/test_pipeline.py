"""server/ai/_pipeline.py: batches finished in order, the next one prepared meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from server.ai._pipeline import pipelined


async def test_batches_finish_in_order_with_the_next_prepared_meanwhile() -> None:
    events: list[str] = []

    async def prepare(batch: int) -> int:
        events.append(f"prepare {batch}")
        return batch * 10

    async def finish(batch: int, result: int) -> None:
        events.append(f"finish {batch} {result}")
        if batch + 1 < 3:
            # The next batch is being prepared while this one finishes.
            await asyncio.sleep(0)
            assert f"prepare {batch + 1}" in events

    await pipelined([0, 1, 2], prepare, finish)
    assert [e for e in events if e.startswith("finish")] == ["finish 0 0", "finish 1 10",
                                                            "finish 2 20"]
    assert events.index("prepare 1") < events.index("finish 1 10")


async def test_at_most_one_batch_is_prepared_ahead() -> None:
    prepared: list[int] = []
    finished: list[int] = []

    async def prepare(batch: int) -> int:
        prepared.append(batch)
        return batch

    async def finish(batch: int, _result: int) -> None:
        for _ in range(5):
            await asyncio.sleep(0)  # let any eager preparation run
        assert len(prepared) <= batch + 2
        finished.append(batch)

    await pipelined(list(range(6)), prepare, finish)
    assert finished == list(range(6))
    assert prepared == list(range(6))


async def test_an_error_in_finish_stops_and_abandons_the_batch_ahead() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def prepare(batch: int) -> int:
        if batch == 1:
            started.set()
            try:
                await asyncio.Event().wait()  # never set: only a cancellation ends it
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return batch

    async def finish(batch: int, _result: int) -> None:
        await started.wait()
        raise RuntimeError(f"batch {batch} cannot be stored")

    with pytest.raises(RuntimeError, match="batch 0"):
        await pipelined([0, 1, 2], prepare, finish)
    await asyncio.wait_for(cancelled.wait(), 5)
    assert cancelled.is_set()


async def test_an_error_in_prepare_reaches_the_caller() -> None:
    finished: list[int] = []

    async def prepare(batch: int) -> int:
        if batch == 1:
            raise ValueError("unreadable")
        return batch

    async def finish(batch: int, _result: int) -> None:
        finished.append(batch)

    with pytest.raises(ValueError, match="unreadable"):
        await pipelined([0, 1, 2], prepare, finish)
    assert finished == [0]


async def test_no_batches() -> None:
    async def prepare(batch: int) -> int:
        raise AssertionError("nothing to prepare")

    async def finish(batch: int, _result: int) -> None:
        raise AssertionError("nothing to finish")

    await pipelined([], prepare, finish)
