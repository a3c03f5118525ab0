"""Full garbage collections paced by the clock instead of by allocations (``labelhub serve``).

A full (generation 2) collection walks every object the process tracks with the event loop
stopped: 40-80 ms in a hub process holding 200 sockets (docs/performance.md, "Garbage collection
and event-loop stalls"). CPython starts one after every ten collections of generation 1 once
enough objects have reached generation 2. During an upload (request objects that outlive a young
collection, by the thousand) that came every ~4 s, and those pauses alone set the edit latency's
p99 while the hub's own process took an upload: 28-46 ms, against 15-19 ms for the same upload
sent to another process and 14 ms with the full collections held back (docs/performance.md,
"Eighth session").

So the collector's own full collections are off, and :func:`paced_collections` makes one when
CPython would have considered it (its count of generation-1 collections since the last full one
reached the threshold), at most once per interval. Young collections run as before; what outlives
them waits at most one interval to be freed (a 20,000-image upload left the same resident memory
either way).
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["CPYTHON_FULL", "FULL_OFF", "collect_if_due", "pace", "paced_collections", "unpace"]

#: Generation 2's threshold while paced: never reached, so CPython starts no full collection.
FULL_OFF = 2**30
#: CPython's own threshold for generation 2.
CPYTHON_FULL = 10


def pace() -> int:
    """Turn CPython's own full collections off; returns its threshold for them (for
    :func:`collect_if_due` and :func:`unpace`)."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_OFF)
    return CPYTHON_FULL if full == FULL_OFF else full  # paced already: CPython's default


def unpace(threshold: int) -> None:
    """Give CPython its full collections back, at ``threshold``."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, threshold)


def collect_if_due(threshold: int) -> bool:
    """A full collection when ``threshold`` generation-1 collections have run since the last
    (``gc.get_count()[2]`` counts them); True when it ran."""
    if gc.get_count()[2] < threshold:
        return False
    gc.collect(2)
    return True


async def paced_collections(interval: float, threshold: int) -> None:
    """Every ``interval`` seconds, :func:`collect_if_due`; runs until cancelled."""
    while True:
        await asyncio.sleep(interval)  # the pacing itself: a clock, not an event to await
        collect_if_due(threshold)
