"""Edit -> peer latency while another client uploads, for ``benchmarks.hub`` (phase
``uploading``, issue 19).

The uploader is a process of its own (``python -m benchmarks._hub_uploading URL TOKEN PROJECT
TOTAL PER_REQUEST``): it makes TOTAL distinct small PNGs (64 x 48 noise, so no two share a
sha256), prints ``ready``, waits for ``go`` on stdin, then posts them PER_REQUEST at a time on one
connection, one request after the other, printing ``sent DONE SECONDS`` after each answer and
``end DONE SECONDS`` at the end. The server decodes, thumbnails and stores them (its offload pool)
and commits their rows; nothing here waits on its event loop but the upload requests.

The 200 watchers and the editor (50 ops/s) are on the same server; the window opens once the
first upload request is answered (the upload is in full swing) and is measured idle first, in the
same run. The editing stops when the upload ends, if that comes first (the row gives the edits).

The control: the very same upload sent to a second ``labelhub serve`` with a database and a data
directory of its own (``Control``), while the editor and the watchers stay on the first. The
machine does the same work (the client, the decoding pool, the files, PostgreSQL), but the hub's
process does none of it: what the hub's tail loses to that is the machine's, not the upload
path's.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks import _hub_load as load
from benchmarks._hub_two import Group, Latency, Row, loadavg, split_fanout, summary
from client import RestClient

__all__ = ["Control", "control_server", "uploading_phase"]


@dataclass(frozen=True)
class Control:
    """A second server sharing nothing with the measured one but the machine (and the
    PostgreSQL cluster): where the control's uploads go."""

    url: str
    token: str
    project: int


class _Uploader:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.end: tuple[int, float, float] | None = None  # images, seconds, monotonic end
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def line(self) -> list[str]:
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"uploader exited ({await self.proc.wait()})")
        return raw.decode().split()

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        while (await self.line())[0] != "sent":
            pass
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while (words := await self.line())[0] != "end":
            pass
        self.end = (int(words[1]), float(words[2]), time.monotonic())
        self.ended.set()


@contextlib.asynccontextmanager
async def control_server(base: str, env: dict[str, str]) -> AsyncIterator[Control]:
    """A second ``labelhub serve`` on a database (a sibling of ``base``) and a data directory of
    its own, with a project: where the control's uploads go. ``env``: the measured server's
    (its admin login is this one's too)."""
    name = f"lh_bench_control_{uuid.uuid4().hex[:10]}"
    head, _, _ = base.rpartition("/")
    await load.admin_sql(base, f'CREATE DATABASE "{name}"')
    data = Path(tempfile.mkdtemp(prefix="lh-bench-control-"))
    own = {**env, "LABELHUB_DATABASE_URL": f"{head}/{name}", "LABELHUB_DATA_DIR": str(data)}
    proc = None
    try:
        await asyncio.to_thread(load.migrate, own)
        proc, url = load.serve(own)
        async with RestClient(url, timeout=300.0) as admin:
            await admin.login(own["LABELHUB_ADMIN_EMAIL"], own["LABELHUB_ADMIN_PASSWORD"])
            assert admin.token is not None
            project = (await admin.create_project("control"))["id"]
            # Its offload pool starts with its first upload, as the measured server's did.
            await admin.upload_images(project, [(f"c{i}.png", png)
                                                for i, png in enumerate(_pngs(4))])
            yield Control(url, admin.token, project)
    finally:
        if proc is not None:
            proc.stop()
        await load.admin_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data, ignore_errors=True)


async def _busy_round(url: str, token: str, project: int, total: int, per: int,
                      group: list[Group], image: int, seconds: float
                      ) -> tuple[load.Fanout, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks._hub_uploading", url, token, str(project), str(total),
        str(per), cwd=load.ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    uploader = _Uploader(proc)
    try:
        while (await uploader.line())[0] != "ready":
            pass
        [busy] = await split_fanout(group[0].target, group, image, rate=50, seconds=seconds,
                                    settle_first=False, before_go=uploader.go,
                                    until=uploader.ended)
        window_end = time.monotonic()
        await uploader.ended.wait()
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert uploader.end is not None
    done, took, ended = uploader.end
    covered = "" if ended >= window_end else ", editing stopped with it"
    return busy, f"{done:,} in {took:.1f} s ({done / took:,.0f}/s, {busy.ops} edits{covered})"


async def uploading_phase(row: Row, latency: Latency, quick: bool, url: str, token: str,
                          project: int, image: int, pid: int,
                          control: Control | None = None) -> None:
    """Rounds of idle, then busy (a fresh uploader of ``total`` images each round), then, with a
    ``control``, the same upload sent to the control's server."""
    # 20,000: the upload now outlasts the window (5,000 took 2-4 s, ~150 edits: too few for a p99)
    total, per = (1_000, 250) if quick else (20_000, 250)
    seconds = 3.0 if quick else 10.0  # or until the upload ends, if sooner
    rounds = 1 if quick else 5
    target = load.labelhub_target(url.replace("http", "ws", 1), token, project)
    group = [Group("A", target, pid, 200)]
    idle: list[load.Fanout] = []
    busy: list[load.Fanout] = []
    controlled: list[load.Fanout] = []
    loads: tuple[list[str], list[str], list[str]] = ([], [], [])
    uploads, control_uploads = [], []
    for _ in range(rounds):
        loads[0].append(loadavg())
        idle += await split_fanout(target, group, image, rate=50, seconds=seconds)
        loads[1].append(loadavg())
        run, upload = await _busy_round(url, token, project, total, per, group, image, seconds)
        busy.append(run)
        uploads.append(upload)
        if control is not None:
            await load.settle(pid)
            loads[2].append(loadavg())
            run, upload = await _busy_round(control.url, control.token, control.project, total,
                                            per, group, image, seconds)
            controlled.append(run)
            control_uploads.append(upload)
    row(f"edit -> peer latency, 200 watchers, 50 ops/s, while another client uploads {total:,} "
        f"small PNGs ({per} per request), {rounds} round(s) of {seconds:.0f} s (median p50 / p99; "
        f"in brackets, when the watcher read it). Uploads: {'; '.join(uploads)}",
        summary(busy, loads[1]), f"{summary(idle, loads[0])} (idle, same run)",
        "p99 <= 10 ms, as idle")
    if control is not None:
        row(f"control: the same uploads sent to a second server (its own database and data "
            f"directory), editor and watchers as above. Uploads: {'; '.join(control_uploads)}",
            summary(controlled, loads[2]), "the rows above", "")


def _pngs(total: int) -> list[bytes]:
    rng = np.random.default_rng(19)
    out = []
    for _ in range(total):
        ok, buf = cv2.imencode(".png", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        assert ok
        out.append(buf.tobytes())
    return out


async def _upload(url: str, token: str, project: int, total: int, per: int) -> None:
    files = _pngs(total)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go"
    done, t0 = 0, time.perf_counter()
    async with RestClient(url, token=token, timeout=300.0) as rest:
        for start in range(0, total, per):
            chunk = files[start:start + per]
            done += len(await rest.upload_images(
                project, [(f"u{start + i}.png", b) for i, b in enumerate(chunk)]))
            print(f"sent {done} {time.perf_counter() - t0:.3f}", flush=True)
    print(f"end {done} {time.perf_counter() - t0:.3f}", flush=True)


if __name__ == "__main__":
    url_, token_, project_, total_, per_ = sys.argv[1:6]
    asyncio.run(_upload(url_, token_, int(project_), int(total_), int(per_)))
