"""Built-in tasks: ``count``, for tests, demos and checking that workers run.

``count`` counts to ``params["to"]`` (default 10), waiting ``params["step_seconds"]`` (default
0.1) per step as if each step were a unit of real work, and reports progress after each. It is
resumable as every task must be: a run after a worker died continues from the stored progress.
"""

from __future__ import annotations

import asyncio
from typing import Any

from server.jobs.context import JobContext
from server.jobs.registry import task

__all__ = ["count"]


@task("count")
async def count(ctx: JobContext) -> dict[str, Any]:
    total = max(0, min(int(ctx.params.get("to", 10)), 1_000_000))
    step = max(0.0, min(float(ctx.params.get("step_seconds", 0.1)), 60.0))
    start = min(ctx.resume_from, total)
    for done in range(start + 1, total + 1):
        await asyncio.sleep(step)  # the simulated unit of work
        await ctx.progress(done, total)
    if total == 0:
        await ctx.progress(0, 0)
    return {"counted": total, "resumed_from": start, "attempts": ctx.attempts}
