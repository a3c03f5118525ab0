"""Bulk paths of the hub: ``python -m benchmarks.bulk [--quick] [--write-docs]`` (also run by
``make bench``).

A real ``labelhub serve`` process on each database (a fresh SQLite file, a fresh PostgreSQL
database from ``LABELHUB_TEST_POSTGRES_URL`` or the local default), driven through the SDK:

* 1,000 and 5,000 boxes created by one ``batch`` op in one message, send -> ack;
* 1,000 single ``create`` ops fired at once through the SDK (``asyncio.gather``), all
  acknowledged: time to the last ack, and how many came back ``rate_limited`` (each was resent);
* a pipelined burst of 300 single creates on a raw socket (inside the rate limit's burst, none
  refused) beside the same 300 sent one after the other, each after the previous ack: whether
  the hub serves a burst any dearer than a paced stream (hub CPU per op, from /proc);
* ``GET .../images/{id}/objects`` on a 10,000-object image beside the socket snapshot of the
  same image (subscribe -> snapshot frame), both read raw (no SDK parsing), alternating rounds.

Label Studio's figures from issue 19 (same VM, 1.23) are the baseline for creates. The client
runs on the same 2 cores as the server, so every figure carries its noise; medians of rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from websockets.asyncio.client import connect

from benchmarks import _hub_load as load
from benchmarks._docs import replace_section
from benchmarks._loop import runner
from client import LabelhubClient, RestClient

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin@example.com", "bench-admin-password")
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LABEL_STUDIO = {1000: "86 ms", 5000: "326 ms"}  # issue 19, measured on this VM
GOAL_5000 = {"PostgreSQL": "<= 100 ms", "SQLite": "<= 250 ms"}


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((1000, 1000, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


def _box(i: int) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": "bbox", "label": "car",
            "geometry": {"x": float(i % 98) * 10, "y": float(i // 98 % 98) * 10, "w": 8.0, "h": 8.0}}


def _batch(n: int) -> dict[str, Any]:
    return {"kind": "batch", "ops": [{"kind": "create", "object": _box(i)} for i in range(n)]}


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.rows: list[tuple[str, str, str, str]] = []

    def row(self, case: str, ours: str, baseline: str = "", goal: str = "") -> None:
        self.rows.append((case, ours, baseline, goal))
        print(f"  {case}: {ours}  {baseline}", flush=True)

    def table(self) -> str:
        lines = ["| case | Labelhub | baseline | goal |", "|---|---:|---:|---|"]
        lines += [f"| {c} | {o} | {b} | {g} |" for c, o, b, g in self.rows]
        return "\n".join(lines)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:,.0f} ms"


async def _server(db_url: str, data: Path) -> tuple[load.Process, str]:
    env = {**os.environ, "LABELHUB_DATABASE_URL": db_url, "LABELHUB_DATA_DIR": str(data),
           "LABELHUB_SECRET_KEY": "bench-secret-key", "LABELHUB_ADMIN_EMAIL": ADMIN[0],
           "LABELHUB_ADMIN_PASSWORD": ADMIN[1], "LABELHUB_WORKERS": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "db", "upgrade", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    if await proc.wait() != 0:
        raise RuntimeError("migration failed")
    port = load.free_port()
    server = load.start(["-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--log-level", "info"], env, "Uvicorn running on", port)
    return server, f"http://127.0.0.1:{port}"


async def _one_database(bench: Bench, name: str, db_url: str, data: Path) -> None:
    server, url = await _server(db_url, data)
    rounds = 1 if bench.quick else 5
    try:
        async with RestClient(url) as admin:
            await admin.login(*ADMIN)
            assert admin.token is not None
            project = (await admin.create_project(f"bulk {name}"))["id"]
            png = _png()
            items = await admin.upload_images(
                project, [(f"b{i}.png", png + bytes(i + 1)) for i in range(3 + 2 * rounds)])
            images = sorted(i["id"] for i in items)
            async with LabelhubClient(url, project, token=admin.token, timeout=600) as hub:
                for n in (1000, 5000):
                    times, cpu = [], []
                    for _ in range(rounds):
                        image = images.pop()
                        await hub.open_image(image)
                        op = _batch(n)
                        await load.settle(server.pid)
                        before, t0 = load.cpu_seconds(server.pid), time.perf_counter()
                        await hub.op(image, op)
                        times.append(time.perf_counter() - t0)
                        await load.settle(server.pid)  # the fan-out after the ack counts too
                        cpu.append(load.cpu_seconds(server.pid) - before)
                        await hub.release_image(image)
                    each = ", ".join(f"{t * 1e3:.0f}" for t in times)
                    bench.row(f"{name}: {n:,} boxes in one batch op, send -> ack (median of "
                              f"{rounds}, each round in order in brackets; then the server "
                              "process's CPU for it: SQLite's work included, PostgreSQL's not)",
                              f"{_ms(times)} [{each}] ({_ms(cpu)} CPU)",
                              f"Label Studio 1.23: {LABEL_STUDIO[n]}",
                              GOAL_5000[name] if n == 5000 else "")
                image = images.pop()
                await hub.open_image(image)
                ops = [{"kind": "create", "object": _box(i)} for i in range(1000)]
                t0 = time.perf_counter()
                done = await asyncio.gather(*(hub.op(image, op) for op in ops))
                elapsed = time.perf_counter() - t0
                assert len({a.seq for a in done}) == 1000
                bench.row(f"{name}: 1,000 single creates through the SDK at once, time to the "
                          f"last ack (all acked; {hub.rate_limited} refused rate_limited and "
                          "resent)", f"{elapsed * 1e3:,.0f} ms",
                          "paced at 90 ops/s after a burst of 200: >= 8.9 s by design")
                await hub.release_image(image)
                await _burst(bench, name, url, admin.token, project, images.pop(), server.pid)
                big = images.pop()
                await hub.open_image(big)
                await hub.op(big, _batch(5000))
                await hub.op(big, _batch(5000))
                await hub.release_image(big)
            await _objects(bench, name, url, admin.token, project, big, 3 if bench.quick else 7)
    finally:
        server.stop()


async def _burst(bench: Bench, name: str, url: str, token: str, project: int, image: int,
                 pid: int) -> None:
    """300 creates pipelined (all sent, then all acks read) vs one at a time (send, wait for the
    ack): the hub's CPU per op and the time to the last ack."""
    ws_url = url.replace("http", "ws", 1) + "/api/v1/ws"
    results: dict[str, tuple[float, float]] = {}
    for mode in ("paced", "burst", "paced", "burst"):
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"},
                           compression=None, max_size=2**26) as ws:
            await ws.send(json.dumps({"type": "hello", "id": "h", "project": project}))
            await _answer(ws, "h")
            await ws.send(json.dumps({"type": "open_image", "id": "o", "image": image}))
            lock = (await _answer(ws, "o"))["lock"]["token"]
            frames = [json.dumps({"type": "op", "id": f"p{i}", "image": image, "token": lock,
                                  "client_op_id": uuid.uuid4().hex,
                                  "op": {"kind": "create", "object": _box(i)}})
                      for i in range(290)]  # + hello, open, release: inside the burst of 300
            await load.settle(pid)
            cpu, t0 = load.cpu_seconds(pid), time.perf_counter()
            if mode == "burst":
                for frame in frames:
                    await ws.send(frame)
                for i in range(len(frames)):
                    assert (await _answer(ws, f"p{i}"))["type"] == "ack"
            else:
                for i, frame in enumerate(frames):
                    await ws.send(frame)
                    assert (await _answer(ws, f"p{i}"))["type"] == "ack"
            elapsed = time.perf_counter() - t0
            await load.settle(pid)
            used = load.cpu_seconds(pid) - cpu
            await ws.send(json.dumps({"type": "release_image", "id": "r", "image": image}))
            await _answer(ws, "r")
        old = results.get(mode, (0.0, 0.0))
        results[mode] = (old[0] + used / len(frames) / 2, old[1] + elapsed / 2)
    (burst_cpu, burst_t), (paced_cpu, paced_t) = results["burst"], results["paced"]
    bench.row(f"{name}: 290 single creates on one socket, pipelined at once: hub CPU per op "
              "(time to the last ack)", f"{burst_cpu * 1e6:,.0f} us ({burst_t * 1e3:,.0f} ms)",
              f"each after the previous ack: {paced_cpu * 1e6:,.0f} us "
              f"({paced_t * 1e3:,.0f} ms)", "burst no dearer than paced")


async def _answer(ws: Any, request_id: str) -> dict[str, Any]:
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("id") == request_id and msg.get("type") in ("ack", "error"):
            return dict(msg)


async def _objects(bench: Bench, name: str, url: str, token: str, project: int, image: int,
                   rounds: int) -> None:
    ws_url = url.replace("http", "ws", 1) + "/api/v1/ws"
    headers = {"Authorization": f"Bearer {token}"}
    rest_times, snap_times = [], []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http, \
            connect(ws_url, additional_headers=headers, compression=None,
                    max_size=2**26) as ws:
        await ws.send(json.dumps({"type": "hello", "id": "h", "project": project}))
        await _answer(ws, "h")
        size = 0
        for r in range(rounds):
            t0 = time.perf_counter()
            resp = await http.get(f"/api/v1/projects/{project}/images/{image}/objects")
            rest_times.append(time.perf_counter() - t0)
            assert resp.status_code == 200
            size = len(resp.content)
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "subscribe", "id": f"s{r}", "image": image}))
            while True:  # the ack, then the snapshot frame
                raw = await ws.recv()
                if raw.startswith('{"type":"snapshot"') or '"type":"snapshot"' in raw[:64]:
                    break
            snap_times.append(time.perf_counter() - t0)
            await ws.send(json.dumps({"type": "unsubscribe", "id": f"u{r}", "image": image}))
            await _answer(ws, f"u{r}")
    ratio = statistics.median(rest_times) / statistics.median(snap_times)
    bench.row(f"{name}: GET .../objects of a 10,000-box image ({size / 1e6:.1f} MB), request -> "
              f"body read (median of {rounds})", f"{_ms(rest_times)} ({ratio:.2f}x the snapshot)",
              f"socket snapshot: {_ms(snap_times)}", "<= 1.2x the snapshot")


async def run(quick: bool) -> Bench:
    import asyncpg

    bench = Bench(quick)
    base = os.environ.get("LABELHUB_TEST_POSTGRES_URL") or DEFAULT_PG
    head, _, _ = base.rpartition("/")
    name = f"lh_bulk_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{head}/postgres".replace("+asyncpg", ""), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        with tempfile.TemporaryDirectory(prefix="lh-bulk-") as tmp:
            sqlite_dir, pg_dir = Path(tmp, "sqlite"), Path(tmp, "pg")
            await _one_database(bench, "SQLite", f"sqlite+aiosqlite:///{sqlite_dir}/lh.db",
                                sqlite_dir)
            await _one_database(bench, "PostgreSQL", f"{head}/{name}", pg_dir)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return bench


def write_docs(table: str, machine: str, quick: bool) -> None:
    section = (
        "## Bulk edits\n\n"
        f"`python -m benchmarks.bulk{' --quick' if quick else ''}` (also part of `make bench`). "
        f"Machine: {machine}. One "
        "`labelhub serve` process per database (SQLite file; PostgreSQL 15), driven through the "
        "SDK (benchmarks/bulk.py) on the same 2 cores, so the figures carry the client's noise "
        "and that of the other work on the machine. Creates are timed from the SDK's `op()` "
        "call (JSON encoding included) to its ack; Label Studio's figures are the ones issue 19 "
        "measured on this VM. The objects route and the snapshot are read raw (no parsing on "
        "the client), in alternating rounds.\n\n" + table + "\n")
    replace_section("Bulk edits", section)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk")
    parser.add_argument("--quick", action="store_true", help="one round of each")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args(argv if argv is not None else [])
    quick = args.quick or bool(os.environ.get("LABELHUB_BENCH_QUICK"))
    t0, load_before = time.perf_counter(), os.getloadavg()[0]
    bench = runner()(run(quick))
    machine = (f"2-core VM shared with other work; 1-minute load average {load_before:.1f} "
               f"before the run, {os.getloadavg()[0]:.1f} after")
    print(f"\nMachine: {machine}; {time.perf_counter() - t0:.0f} s\n")
    print(bench.table())
    if args.write_docs:
        write_docs(bench.table(), machine, quick)


if __name__ == "__main__":
    main(sys.argv[1:])
