"""Import/export at scale: ``python -m benchmarks.formats`` (also run by ``make bench``).

* CSV import of 200,000 classification labels (100,000 images x 2 labels) through the real
  route, ``POST /api/v1/projects/{id}/import?format=csv`` on the app in process (auth, parse,
  match by name, default-label rules, bulk write, op log, report), against a baseline measured
  in the same run: a raw ``executemany`` insert of the same 200,000 ``image_labels`` rows.
* COCO export of 10,000 images / 200,000 objects (180,000 boxes, 20,000 polygons), streamed;
  CPU of this process and of the offload pool (which converts the batches); peak Python memory
  of this process by tracemalloc (a second, traced run) after the first fifth of the images
  and at the end: equal figures mean memory does not grow with the project (the pool's worker
  holds one batch at a time).

* Label Studio JSON import of 20,000 tasks x 10 boxes and CVAT for images XML import of the
  same 200,000 boxes, through the real route (``format=labelstudio`` / ``format=cvat``: parse,
  match images by name, percentages to pixels, validate, bulk write, op log), each into a fresh
  project, against a baseline measured in the same run: the native JSON import of the same
  boxes (the lossless format, no conversion).

On SQLite (a temporary file) and on PostgreSQL (``LABELHUB_TEST_POSTGRES_URL`` or the local
default) when it is reachable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, select, text

from benchmarks._ai_search import scratch_postgres
from server import offload
from server.app import create_app
from server.cli import _alembic_upgrade
from server.db import make_engine, make_sessionmaker, transaction
from server.formats import coco
from server.formats._source import BATCH, ExportJob
from server.models import Image, ImageLabel, LabelObjectRow, Project
from server.settings import Settings

IMPORT_IMAGES, LABELS_PER_IMAGE = 100_000, 2
FOREIGN_TASKS, BOXES_PER_TASK = 20_000, 10
EXPORT_IMAGES, OBJECTS_PER_IMAGE = 10_000, 20
VOCAB = [f"class_{i:02d}" for i in range(50)]


def _table(model: Any) -> Any:
    return model.__table__  # Core table: executemany without ORM overhead


async def _project(sessions: Any, name: str) -> int:
    async with transaction(sessions) as s:
        p = Project(name=name, description="", seq=0, settings={})
        s.add(p)
        await s.flush()
        return p.id


async def _images(sessions: Any, pid: int, n: int) -> list[int]:
    rows = [{"project_id": pid, "name": f"img_{i:06d}.jpg", "sha256": hashlib.sha256(f"{pid}/{i}".encode()).hexdigest(),
             "mime": "image/jpeg", "size_bytes": 1, "width": 640, "height": 480, "object_count": 0,
             "auto_labeled": False} for i in range(n)]
    async with transaction(sessions) as s:
        conn = await s.connection()
        for i in range(0, n, 5_000):
            await conn.execute(insert(_table(Image)), rows[i : i + 5_000])
        return list((await s.execute(select(Image.id).where(Image.project_id == pid).order_by(Image.id))).scalars())


async def bench_import(sessions: Any, settings: Settings) -> dict[str, float]:
    pid = await _project(sessions, "import")
    await _images(sessions, pid, IMPORT_IMAGES)
    rng = random.Random(1)
    lines = ["image,labels,default_label"]
    for i in range(IMPORT_IMAGES):
        a, b = rng.sample(VOCAB, LABELS_PER_IMAGE)
        lines.append(f"img_{i:06d}.jpg,{a};{b},{b}")
    body = ("\n".join(lines) + "\n").encode()
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client:
        login = await client.post("/api/v1/auth/login", json={"email": settings.admin_email,
                                                                "password": settings.admin_password})
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        t0 = time.perf_counter()
        resp = await client.post(f"/api/v1/projects/{pid}/import", params={"format": "csv"}, content=body)
        t_import = time.perf_counter() - t0
    report = resp.json()
    assert resp.status_code == 200, resp.text[:500]
    assert report["refused"] == 0 and report["images_with_label_changes"] == IMPORT_IMAGES
    # Baseline: the same 200,000 rows by a raw executemany, nothing else.
    async with transaction(sessions) as s:
        rows = [dict(r._mapping) for r in await s.execute(select(_table(ImageLabel)))]
        await s.execute(delete(ImageLabel))
    t0 = time.perf_counter()
    async with transaction(sessions) as s:
        conn = await s.connection()
        for i in range(0, len(rows), 10_000):
            await conn.execute(insert(_table(ImageLabel)), rows[i : i + 10_000])
    t_base = time.perf_counter() - t0
    return {"labels": len(rows), "import_s": t_import, "baseline_s": t_base}


def _objects(pid: int, ids: list[int]) -> list[dict[str, Any]]:
    rng = random.Random(2)
    out = []
    for image_id in ids:
        for k in range(OBJECTS_PER_IMAGE):
            x, y = rng.uniform(0, 560), rng.uniform(0, 400)
            geo: dict[str, Any]
            if k < OBJECTS_PER_IMAGE - 2:
                kind, geo = "bbox", {"x": x, "y": y, "w": rng.uniform(5, 80), "h": rng.uniform(5, 80)}
            else:
                pts = [[x + rng.uniform(0, 70), y + rng.uniform(0, 70)] for _ in range(8)]
                cx, cy = x + 35, y + 35  # sorted by angle: a simple (star-shaped) polygon
                pts.sort(key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
                kind, geo = "polygon", {"parts": [{"exterior": pts, "holes": []}]}
            out.append({"image_id": image_id, "id": f"o{k}", "project_id": pid, "type": kind,
                        "label": VOCAB[k % len(VOCAB)], "geometry": geo, "keypoints": [], "attributes": {},
                        "rpy": None, "occluded": False, "z": 0, "version": 1, "source": "import"})
    return out


async def bench_export(sessions: Any) -> dict[str, float]:
    pid = await _project(sessions, "export")
    ids = await _images(sessions, pid, EXPORT_IMAGES)
    rows = _objects(pid, ids)
    async with transaction(sessions) as s:
        conn = await s.connection()
        for i in range(0, len(rows), 10_000):
            await conn.execute(insert(_table(LabelObjectRow)), rows[i : i + 10_000])
    job = ExportJob(sessions, pid, None, {})
    pool = offload.get()  # started before the clock, as in a running server: batches convert there
    await pool.run(len, b"", cost=pool.inline_cost)
    pool0, load0 = _children_cpu(), os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    size = 0
    async for chunk in coco.export(job):
        size += len(chunk)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0  # CPU: every thread of the process
    pool_cpu, load = _spent(pool0, _children_cpu()), max(load0, os.getloadavg()[0])
    # Traced run: the peak once a fifth of the images are out, and at the end.
    tracemalloc.start()
    chunks, early = 0, 0.0
    async for _chunk in coco.export(job):
        chunks += 1
        if chunks == 1 + EXPORT_IMAGES // 5 // BATCH:  # the opening, then one chunk per batch
            early = tracemalloc.get_traced_memory()[1]
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"objects": len(rows), "export_s": elapsed, "export_cpu_s": cpu, "export_pool_cpu_s": pool_cpu,
            "export_load": load, "bytes": size, "early_peak_mb": early / 2**20, "peak_mb": peak / 2**20}


def _foreign_files(n: int) -> dict[str, bytes]:
    """The same boxes as a Label Studio export, a CVAT XML and a native file (images 640x480)."""
    rng = random.Random(3)
    tasks, xml, native = [], ['<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
                              "<meta><task><labels>" + "".join(f"<label><name>{v}</name></label>" for v in VOCAB)
                              + "</labels></task></meta>"], []
    for i in range(n):
        name = f"img_{i:06d}.jpg"
        boxes = []
        for k in range(BOXES_PER_TASK):
            x, y, w, h = rng.uniform(0, 560), rng.uniform(0, 400), rng.uniform(5, 80), rng.uniform(5, 80)
            boxes.append((f"b{k}", VOCAB[(i + k) % len(VOCAB)], x, y, w, h))
        tasks.append({"id": i + 1, "data": {"image": f"/data/upload/1/{i:08x}-{name}"}, "annotations": [
            {"id": i + 1, "was_cancelled": False, "result": [
                {"id": b, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                 "original_width": 640, "original_height": 480, "image_rotation": 0,
                 "value": {"x": x * 100 / 640, "y": y * 100 / 480, "width": w * 100 / 640,
                           "height": h * 100 / 480, "rotation": 0, "rectanglelabels": [lab]}}
                for b, lab, x, y, w, h in boxes]}]})
        xml.append(f'<image id="{i}" name="{name}" width="640" height="480">' + "".join(
            f'<box label="{lab}" source="manual" occluded="0" xtl="{x!r}" ytl="{y!r}" xbr="{x + w!r}" '
            f'ybr="{y + h!r}" z_order="0"></box>' for _b, lab, x, y, w, h in boxes) + "</image>")
        native.append({"name": name, "objects": [{"id": b, "type": "bbox", "label": lab,
                                                  "geometry": {"x": x, "y": y, "w": w, "h": h}}
                                                 for b, lab, x, y, w, h in boxes]})
    xml.append("</annotations>")
    return {"labelstudio": json.dumps(tasks).encode(), "cvat": "".join(xml).encode(),
            "json": json.dumps({"images": native}).encode()}


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) so far of a process on this machine, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def database_cpu(sessions: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend of this database (the server runs on this
    machine), by pid; empty on SQLite (its work is in this process)."""
    async with transaction(sessions) as s:
        if s.bind is None or s.bind.dialect.name != "postgresql":
            return {}
        pids = (await s.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars()
        return {int(p): cpu_seconds(int(p)) for p in pids}


def _children_cpu(pid: int | None = None) -> dict[int, float]:
    """CPU seconds so far of this process's descendants (the offload pool, which parses big
    files, is forked from a forkserver child)."""
    out: dict[int, float] = {}
    for children in Path(f"/proc/{pid or os.getpid()}/task").glob("*/children"):
        try:
            found = [int(p) for p in children.read_text().split()]
        except OSError:
            continue
        for child in found:
            out[child] = cpu_seconds(child)
            out.update(_children_cpu(child))
    return out


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(p, 0.0) for p, t in after.items())


async def bench_foreign(sessions: Any, settings: Settings) -> dict[str, float]:
    files = _foreign_files(FOREIGN_TASKS)
    out: dict[str, float] = {}
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client:
        login = await client.post("/api/v1/auth/login", json={"email": settings.admin_email,
                                                                "password": settings.admin_password})
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        pool = offload.get()  # started before the clock: big files are parsed in its processes
        await pool.run(len, b"", cost=pool.inline_cost)
        for fmt, body in files.items():
            pid = await _project(sessions, fmt)
            await _images(sessions, pid, FOREIGN_TASKS)
            db0, pool0, load0 = await database_cpu(sessions), _children_cpu(), os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            resp = await client.post(f"/api/v1/projects/{pid}/import", params={"format": fmt},
                                     content=body, headers={"Content-Type": "application/octet-stream"})
            out[f"{fmt}_s"] = time.perf_counter() - t0
            out[f"{fmt}_cpu"] = time.process_time() - c0
            out[f"{fmt}_pool_cpu"] = _spent(pool0, _children_cpu())
            out[f"{fmt}_db_cpu"] = _spent(db0, await database_cpu(sessions))
            out[f"{fmt}_load"] = max(load0, os.getloadavg()[0])
            assert resp.status_code == 200, resp.text[:500]
            assert resp.json()["images_with_object_changes"] == FOREIGN_TASKS
            out[f"{fmt}_mb"] = len(body) / 2**20
    return out


def bench_settings(url: str, data_dir: Path) -> Settings:
    """The benchmark server's settings: cheap password hashing, room for the big files."""
    return Settings(database_url=url, data_dir=data_dir, secret_key="bench-secret",
                    admin_email="bench@example.com", admin_password="bench-password-1",
                    password_time_cost=1, password_memory_kib=1024, import_job_mb=10_000,
                    max_upload_mb=1_000)


async def run(url: str, data_dir: Path) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    settings = bench_settings(url, data_dir)
    await asyncio.to_thread(_alembic_upgrade, settings)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        return (await bench_import(sessions, settings), await bench_export(sessions),
                await bench_foreign(sessions, settings))
    finally:
        await engine.dispose()


async def main_async() -> None:
    results: list[tuple[str, dict[str, float], dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        imp, exp, foreign = await run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
        results.append(("sqlite", imp, exp, foreign))
    async with scratch_postgres() as url:
        if url is not None:
            with tempfile.TemporaryDirectory() as tmp:
                imp, exp, foreign = await run(url, Path(tmp))
            results.append(("postgresql", imp, exp, foreign))
    print("| database | CSV import 200k labels | baseline raw executemany | ratio | COCO export 10k img / 200k obj "
          "| output | peak Python memory after 2,000 images / after 10,000 |")
    print("|---|---|---|---|---|---|---|")
    for db, imp, exp, _f in results:
        print(f"| {db} | {imp['import_s']:.1f} s (limit 60 s) | {imp['baseline_s']:.1f} s | "
              f"{imp['import_s'] / imp['baseline_s']:.1f}x | {exp['export_s']:.1f} s, CPU {exp['export_cpu_s']:.1f} s "
              f"+ pool {exp['export_pool_cpu_s']:.1f} s, load {exp['export_load']:.1f} (goal <= 8 s) | "
              f"{exp['bytes'] / 2**20:.0f} MB | {exp['early_peak_mb']:.1f} MB / {exp['peak_mb']:.1f} MB |")
    print("\n| database | Label Studio import, 20k tasks x 10 boxes | CVAT XML import, same boxes "
          "| baseline: native JSON import, same boxes | LS / CVAT vs baseline |")
    print("|---|---|---|---|---|")
    for db, _i, _e, f in results:
        print(f"| {db} | {f['labelstudio_s']:.1f} s ({f['labelstudio_mb']:.0f} MB; goal < 30 s) | "
              f"{f['cvat_s']:.1f} s ({f['cvat_mb']:.0f} MB; goal < 30 s) | {f['json_s']:.1f} s "
              f"({f['json_mb']:.0f} MB) | {f['labelstudio_s'] / f['json_s']:.2f}x / {f['cvat_s'] / f['json_s']:.2f}x |")
    print("\nCPU seconds of each import (the machine may be shared: wall time stretches with its load, "
          "CPU much less): this process (route, validation, writes) + offload pool (parsing) + "
          "PostgreSQL backends; 1-minute load average (the higher of before and after)")
    print("\n| database | Label Studio | CVAT XML | native JSON |")
    print("|---|---|---|---|")
    for db, _i, _e, f in results:
        cells = [f"{f[k + '_cpu']:.1f} + {f[k + '_pool_cpu']:.1f} + {f[k + '_db_cpu']:.1f} s (load {f[k + '_load']:.1f})"
                 for k in ("labelstudio", "cvat", "json")]
        print(f"| {db} | {' | '.join(cells)} |")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
