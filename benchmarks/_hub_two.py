"""Edit -> peer latency with watchers on more than one server, for ``benchmarks.hub``.

Phase ``two`` (issue 18): a second ``labelhub serve`` process B on the same PostgreSQL database
as the benchmark's server A (``LABELHUB_WORKERS=0`` on both). The editor always speaks to A; the
200 watchers sit all on A (the single-process figure), split 100 / 100 across A and B, and all on
B. A frame reaches a watcher on B only through the database: A's commit statement sends the op's
row as a NOTIFY payload beside the doorbell (server/hub/_op_rows.py), B's listener hears it and
fans it out without reading the op log (server/hub/bus.py). So B's figure is A's plus one NOTIFY
hop; the split shows both sides under one load, the all-on-B case the hop with B doing the whole
fan-out. :class:`RowClock` times that hop on its own: a third listener, in this process, notes
when each row arrives, against the send time in its client op id.

``split_fanout`` is ``_hub_load.fanout`` with one watcher process per group (each its own server
URL) and a hook run just before the editor starts (phase ``uploading`` starts its upload there).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import _hub_load as load
from server.hub._op_rows import ROW_CHANNEL

__all__ = ["Group", "RowClock", "loadavg", "split_fanout", "summary", "two_phase"]


@dataclass
class Group:
    """``count`` watchers on one server (``target``), whose process is ``pid``."""

    name: str
    target: load.Target
    pid: int
    count: int


async def split_fanout(editor: load.Target, groups: list[Group], image: int, *, rate: float,
                       seconds: float, settle_first: bool = True,
                       before_go: Callable[[], Awaitable[None]] | None = None,
                       until: asyncio.Event | None = None) -> list[load.Fanout]:
    """One editor on ``editor`` at ``rate`` ops/s on ``image``; each group watches it from its own
    server. One ``Fanout`` per group (latencies only; the CPU is not measured here)."""
    pids = sorted({g.pid for g in groups})
    if settle_first:
        for pid in pids:
            await load.settle(pid)
    watchers: list[load._Watchers] = []
    ws = None
    try:
        for group in groups:
            watchers.append(await load._Watchers.start(group.target, group.count, [image], True))
        for watch in watchers:
            await watch.wait_for("ready")
        ws = await load.open_ws(editor.url)
        lock = await editor.setup_editor(ws, image)
        if settle_first:
            for pid in pids:
                await load.settle(pid)  # joins announce presence to everyone in the room
        if before_go is not None:
            await before_go()
        for watch in watchers:
            await watch.tell("go")
        sent = load.Fanout()
        edits = asyncio.create_task(load._edit(ws, image, lock, rate, seconds, sent))
        if until is not None:  # stop editing when it fires (or at ``seconds``, first)
            stop = asyncio.create_task(until.wait())
            await asyncio.wait([edits, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not edits.done():
                # Cancelled in its pacing sleep (sends are not awaited on a small frame); its
                # ack reader ends when the socket closes below.
                edits.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await edits
        await asyncio.gather(edits, return_exceptions=True)
        results = []
        for group, watch in zip(groups, watchers, strict=True):
            result = load.Fanout(ops=sent.ops, errors=sent.errors, target=sent.ops * group.count)
            await watch.tell(f"expect {result.target}")
            with contextlib.suppress(TimeoutError):  # let the last frames land
                await asyncio.wait_for(watch.wait_for("done"), 5)
                result.all_in.set()
            report = await watch.report()
            result.frames = int(report["frames"])
            result.latencies_ms = [float(v) for v in report["latencies_ms"]]
            result.read_latencies_ms = [float(v) for v in report["read_latencies_ms"]]
            results.append(result)
        return results
    finally:
        for watch in watchers:
            await watch.close()
        if ws is not None:
            await ws.close()


_SENT = re.compile(r'"c" : "t(\d+)-')  # json_build_object's spacing (server/hub/_op_rows.py)


class RowClock:
    """When each edit's row NOTIFY reaches a plain asyncpg listener (in the benchmark process),
    in ms after the editor sent the op (the watchers' clock, CLOCK_REALTIME, in the client op id
    ``t<time_ns>-...`` the row carries)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.latencies_ms: list[float] = []

    @classmethod
    async def start(cls, dsn: str) -> RowClock:
        clock = cls(await asyncpg.connect(dsn))
        await clock.conn.add_listener(ROW_CHANNEL, clock._heard)
        return clock

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        now = time.time_ns()
        sent = _SENT.search(payload)
        if sent:
            self.latencies_ms.append((now - int(sent.group(1))) / 1e6)

    def take(self) -> list[float]:
        taken, self.latencies_ms = self.latencies_ms, []
        return taken

    async def close(self) -> None:
        await self.conn.close()


def _hop(values: list[float]) -> str:
    if not values:
        return "no rows heard"
    return (f"NOTIFY heard {load.percentile(values, 50):.2f} / "
            f"{load.percentile(values, 99):.2f} ms")


Row = Callable[..., None]
Latency = Callable[[load.Fanout], str]


def _missing(results: list[load.Fanout]) -> str:
    lost = sum(r.target - r.frames for r in results if r.frames < r.target)
    return f"; {lost} frames never arrived" if lost else ""


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def summary(runs: list[load.Fanout], loads: list[str]) -> str:
    """Median p50 / p99 over the rounds (arrival, then read), each round's p99 and load."""
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    p50 = [load.percentile(r.latencies_ms, 50) for r in runs]
    p99 = [load.percentile(r.latencies_ms, 99) for r in runs]
    r50 = [load.percentile(r.read_latencies_ms, 50) for r in runs]
    r99 = [load.percentile(r.read_latencies_ms, 99) for r in runs]
    text = f"{med(p50)} / {med(p99)} ms ({med(r50)} / {med(r99)})"
    if len(runs) > 1:
        text += " [p99 by round: " + ", ".join(
            f"{v:.1f} (load {lv})" for v, lv in zip(p99, loads, strict=True)) + "]"
    return text + _missing(runs)


async def two_phase(row: Row, latency: Latency, quick: bool, env: dict[str, str], ws_base: str,
                    token: str, project: int, image: int, a_pid: int) -> None:
    """Rounds of: the single process alone, then server B beside A and the three placements.

    The machine is shared: one window swings by tens of ms, so each case is the median of its
    rounds, with every round's p99 and the 1-minute load average before it."""
    on_a = load.labelhub_target(ws_base, token, project)
    seconds = 3.0 if quick else 10.0  # 500 ops at 50/s: a p99 set by 5 ops
    rounds = 1 if quick else 3
    # Unmeasured: the first ops on a fresh server fill its pools and caches (p99 ~100 ms).
    await split_fanout(on_a, [Group("A", on_a, a_pid, 200)], image, rate=50, seconds=1.0)
    cases = ["alone", "200 on A", "100 on A + 100 on B", "200 on B"]
    runs: dict[tuple[str, str], list[load.Fanout]] = {}
    loads: dict[str, list[str]] = {case: [] for case in cases}
    hops: dict[str, list[float]] = {case: [] for case in cases}
    clock = await RowClock.start(load_dsn(env))
    try:
        await _rounds(clock, rounds, seconds, env, ws_base, token, project, image, a_pid, on_a,
                      runs, loads, hops)
    finally:
        await clock.close()
    what = (f"50 ops/s, {rounds} round(s) of {seconds:.0f} s (median p50 / p99 at arrival; in "
            "brackets, when the watcher read it)")
    row(f"one process (B not started), editor and 200 watchers on A, {what}",
        summary(runs[("alone", "A")], loads["alone"]),
        _hop(hops["alone"]) + " (a third listener, all rounds)", "p99 <= 10 ms at 200")
    for where in cases[1:]:
        ours = "; ".join(f"on {name}: {summary(runs[(where, name)], loads[where])}"
                         for name in ("A", "B") if (where, name) in runs)
        row(f"two processes, editor on A, watchers {where}"
            + (" (B running idle)" if where == "200 on A" else "") + f", {what}",
            ours, _hop(hops[where]) + " (a third listener, all rounds)",
            "p99 <= 10 ms at 200, as one process")


def load_dsn(env: dict[str, str]) -> str:
    return env["LABELHUB_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)


async def _rounds(clock: RowClock, rounds: int, seconds: float, env: dict[str, str],
                  ws_base: str, token: str, project: int, image: int, a_pid: int,
                  on_a: load.Target, runs: dict[tuple[str, str], list[load.Fanout]],
                  loads: dict[str, list[str]], hops: dict[str, list[float]]) -> None:
    for _ in range(rounds):
        loads["alone"].append(loadavg())
        clock.take()
        [alone] = await split_fanout(on_a, [Group("A", on_a, a_pid, 200)], image, rate=50,
                                     seconds=seconds)
        hops["alone"] += clock.take()
        runs.setdefault(("alone", "A"), []).append(alone)
        port = load.free_port()
        b = load.start(["-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                        "--log-level", "info"], env, "Uvicorn running on", port)
        try:
            on_b = load.labelhub_target(ws_base.rsplit(":", 1)[0] + f":{port}", token, project)
            placements = {
                "200 on A": [Group("A", on_a, a_pid, 200)],
                "100 on A + 100 on B": [Group("A", on_a, a_pid, 100),
                                        Group("B", on_b, b.pid, 100)],
                "200 on B": [Group("B", on_b, b.pid, 200)],
            }
            for where, groups in placements.items():
                loads[where].append(loadavg())
                clock.take()
                results = await split_fanout(on_a, groups, image, rate=50, seconds=seconds)
                hops[where] += clock.take()
                for group, result in zip(groups, results, strict=True):
                    runs.setdefault((where, group.name), []).append(result)
        finally:
            b.stop()
