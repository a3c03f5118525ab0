"""Load for ``benchmarks.hub``: server processes, watchers and editors, /proc readings.

The editors speak the wire protocol on plain ``websockets`` connections (not the SDK) so the
client side spends as little CPU as possible on the 2 shared cores. The fan-out's watchers live in
a process of their own (benchmarks/_watchers.py: plain sockets under a ``selectors`` loop, frames
timestamped at ``recv()``), so neither the frame count nor the latency is dominated by the load
generator's own cost per frame. The same driver runs against Labelhub and against the raw
``websockets.broadcast`` baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def settle(pid: int, window: float = 0.25, idle: float = 0.05, limit: float = 60.0) -> None:
    """Wait until the server is quiet (under ``idle`` CPU share over ``window``), so the work of
    one phase (closing hundreds of sockets, presence for each) is not billed to the next."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)  # sampling the process's CPU clock over a window
        if cpu_seconds(pid) - before < idle * window:
            return


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Process:
    proc: subprocess.Popen[str]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start(args: list[str], env: dict[str, str], ready: str, port: int) -> Process:
    """Start a server; return once a line containing ``ready`` appears on its stderr/stdout."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    # LABELHUB_BENCH_SERVER_LOG=path keeps all of the servers' output (stall lines included).
    keep = os.environ.get("LABELHUB_BENCH_SERVER_LOG")
    kept = open(keep, "a", buffering=1) if keep else None

    def pump() -> None:  # keeps the pipe drained for the process's whole life
        assert proc.stdout is not None
        for line in proc.stdout:
            if kept is not None:
                kept.write(f"{proc.pid} {line}")
            if len(log) < 200:
                log.append(line)
            lines.put(line)
        lines.put(None)
        if kept is not None:
            kept.close()

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=60)
        if line is None:
            raise RuntimeError(f"{args} exited:\n" + "".join(log))
        if ready in line:
            return Process(proc, port)


async def admin_sql(base: str, sql: str) -> None:
    """Run ``sql`` (CREATE / DROP DATABASE) on the ``postgres`` database of ``base``'s server."""
    head, _, _ = base.rpartition("/")
    conn = await asyncpg.connect(f"{head}/postgres".replace("+asyncpg", ""), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "server.cli", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)


def serve(env: dict[str, str]) -> tuple[Process, str]:
    """``labelhub serve`` on a free port with ``env``: the process and its base URL."""
    port = free_port()
    proc = start(["-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--log-level", "info"], env, "Uvicorn running on", port)
    return proc, f"http://127.0.0.1:{port}"


# --- protocol adapters -----------------------------------------------------------------------


@dataclass
class Target:
    """How to join as a watcher and as an editor on one server."""

    url: str
    # The messages a watcher sends, in order, each awaiting the reply with its "id", to watch
    # these images (run by benchmarks/_watchers.py).
    watcher_setup: Callable[[list[int]], list[dict[str, Any]]]
    setup_editor: Callable[[ClientConnection, int], Awaitable[tuple[int, str]]]  # token, object


async def _request(ws: ClientConnection, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("id") == msg["id"]:
            if reply["type"] == "error":
                raise RuntimeError(f"{msg['type']}: {reply}")
            return dict(reply)


def labelhub_target(base: str, token: str, project: int) -> Target:
    def watcher(images: list[int]) -> list[dict[str, Any]]:
        return [{"type": "hello", "id": "h", "project": project},
                *({"type": "subscribe", "id": f"s{image}", "image": image} for image in images)]

    async def editor(ws: ClientConnection, image: int) -> tuple[int, str]:
        await _request(ws, {"type": "hello", "id": "h", "project": project})
        ack = await _request(ws, {"type": "open_image", "id": "o", "image": image})
        token_, object_id = int(ack["lock"]["token"]), f"bench{time.time_ns()}"
        await _request(ws, {"type": "op", "id": "c", "image": image, "token": token_,
                            "client_op_id": f"setup-{object_id}",
                            "op": {"kind": "create", "object": {
                                "id": object_id, "type": "bbox", "label": "car",
                                "geometry": {"x": 1, "y": 1, "w": 10, "h": 10}}}})
        return token_, object_id

    return Target(f"{base}/api/v1/ws?token={token}", watcher, editor)


def raw_target(port: int) -> Target:
    def watcher(_images: list[int]) -> list[dict[str, Any]]:
        return []

    async def editor(_ws: ClientConnection, _image: int) -> tuple[int, str]:
        return 0, "bench"

    return Target(f"ws://127.0.0.1:{port}", watcher, editor)


async def open_ws(url: str) -> ClientConnection:
    return await connect(url, compression=None, max_size=2**24, max_queue=None,
                         ping_interval=None, open_timeout=60)


# --- fan-out and latency ---------------------------------------------------------------------


@dataclass
class Fanout:
    frames: int = 0
    cpu: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # frame arrival at the watcher
    read_latencies_ms: list[float] = field(default_factory=list)  # the watcher's recv()
    errors: int = 0
    ops: int = 0
    target: int = 0  # frames expected once the editors are done
    all_in: asyncio.Event = field(default_factory=asyncio.Event)


class _Watchers:
    """The watcher process (benchmarks/_watchers.py), driven line by line over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, target: Target, count: int, images: list[int], latency: bool) -> _Watchers:
        args = ["-m", "benchmarks._watchers", target.url, str(count),
                "--setup", json.dumps(target.watcher_setup(images))]
        if latency:
            args.append("--latency")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=2**26)  # the latencies come as one JSON line
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            code = await self.proc.wait()
            raise RuntimeError(f"benchmarks._watchers exited ({code}); see its stderr above")
        return raw.decode().strip()

    async def wait_for(self, expected: str) -> None:
        while (line := await self.line()) != expected:
            if line.startswith("{"):
                raise RuntimeError(f"benchmarks._watchers: unexpected report {line[:200]}")

    async def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def report(self) -> dict[str, Any]:
        """``stop``: the watcher process prints its counts and exits."""
        await self.tell("stop")
        while not (line := await self.line()).startswith("{"):
            pass  # a "done" that came after its deadline
        await self.proc.wait()
        return dict(json.loads(line))

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def _edit(ws: ClientConnection, image: int, lock: tuple[int, str], rate: float,
                seconds: float, result: Fanout) -> None:
    token, object_id = lock
    ids = itertools.count()

    async def acks() -> None:
        async for frame in ws:
            if isinstance(frame, str) and '"type":"error"' in frame:
                result.errors += 1

    reader = asyncio.create_task(acks())
    start, interval = time.perf_counter(), 1.0 / rate
    for n in ids:
        due = start + n * interval
        if due - start >= seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing: a timer, not a wait for an event
        result.ops += 1
        await ws.send(json.dumps(separators=(",", ":"), obj={
            "type": "op", "id": n, "image": image, "token": token,
            "client_op_id": f"t{time.time_ns()}-{n}-{image}",  # the watchers' clock
            "op": {"kind": "move_box", "object_id": object_id, "x": 1 + n % 50, "y": 1, "w": 10,
                   "h": 10}}))
    reader.cancel()


async def fanout(target: Target, pid: int, *, watchers: int, images: list[int], rate: float,
                 seconds: float, latency: bool, settle_first: bool = True) -> Fanout:
    """``len(images)`` editors at ``rate`` ops/s each; every watcher watches every image.

    The watchers are a separate process (benchmarks/_watchers.py); only ``pid``'s CPU is measured.
    ``settle_first=False``: do not wait for the server to go quiet (another load runs on purpose).
    """
    result = Fanout()
    if settle_first:
        await settle(pid)
    watch = await _Watchers.start(target, watchers, images, latency)
    editors: list[ClientConnection] = []
    try:
        await watch.wait_for("ready")
        editors = [await open_ws(target.url) for _ in images]
        locks = [await target.setup_editor(ws, image) for ws, image in zip(editors, images, strict=True)]
        if settle_first:
            await settle(pid)  # joins announce presence to everyone in the room
        profiler = _profiler(pid, seconds)
        await watch.tell("go")
        cpu0 = cpu_seconds(pid)
        await asyncio.gather(*(_edit(ws, image, lock, rate, seconds, result)
                               for ws, image, lock in zip(editors, images, locks, strict=True)))
        result.target = result.ops * watchers
        await watch.tell(f"expect {result.target}")
        with contextlib.suppress(TimeoutError):  # let the last frames land
            await asyncio.wait_for(watch.wait_for("done"), 5)
            result.all_in.set()
        result.cpu = cpu_seconds(pid) - cpu0
        report = await watch.report()
        result.frames = int(report["frames"])
        result.latencies_ms = [float(v) for v in report["latencies_ms"]] if latency else []
        result.read_latencies_ms = ([float(v) for v in report["read_latencies_ms"]]
                                    if latency else [])
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
    finally:
        await watch.close()
        await asyncio.gather(*(ws.close() for ws in editors), return_exceptions=True)
    return result


def _profiler(pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    """With ``LABELHUB_BENCH_PYSPY=DIR``, record the server with py-spy (installed by hand; not a
    dependency) over each measured window, as collapsed stacks in DIR."""
    out = os.environ.get("LABELHUB_BENCH_PYSPY")
    if not out:
        return None
    path = Path(out) / f"fanout-{pid}-{time.time_ns()}.txt"
    # --nonblocking: py-spy does not pause the server to read its stack (pausing it 250 times a
    # second is itself a latency the window would measure).
    return subprocess.Popen(["py-spy", "record", "--nonblocking", "-p", str(pid), "-d",
                             str(int(seconds)), "-r", "250",
                             "-f", "raw", "-o", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# --- idle memory -----------------------------------------------------------------------------


async def idle_memory(urls: list[str], pid: int, hello: Callable[[ClientConnection, int], Awaitable[None]] | None,
                      batch: int = 100) -> tuple[float, int]:
    """Open one connection per url (joined via ``hello``); (RSS bytes per connection, count)."""
    await settle(pid)
    before = rss_bytes(pid)
    sockets: list[ClientConnection] = []
    try:
        for start_ in range(0, len(urls), batch):
            chunk = await asyncio.gather(*(open_ws(u) for u in urls[start_:start_ + batch]))
            sockets.extend(chunk)
            if hello is not None:
                await asyncio.gather(*(hello(ws, start_ + i) for i, ws in enumerate(chunk)))
        await settle(pid)
        after = rss_bytes(pid)
        return (after - before) / len(sockets), len(sockets)
    finally:
        for start_ in range(0, len(sockets), 500):
            await asyncio.gather(*(ws.close() for ws in sockets[start_:start_ + 500]),
                                 return_exceptions=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
