"""Import/export at scale: ``python -m benchmarks.formats`` (also run by ``make bench``).

* CSV import of 200,000 classification labels (100,000 images x 2 labels) through the real
  route, ``POST /api/v1/projects/{id}/import?format=csv`` on the app in process (auth, parse,
  match by name, default-label rules, bulk write, op log, report), against a baseline measured
  in the same run: a raw ``executemany`` insert of the same 200,000 ``image_labels`` rows.
* COCO export of 10,000 images / 200,000 objects (180,000 boxes, 20,000 polygons), streamed;
  peak Python memory by tracemalloc (a second, traced run) after the first fifth of the images
  and at the end: equal figures mean memory does not grow with the project.

On SQLite (a temporary file) and on PostgreSQL (``LABELHUB_TEST_POSTGRES_URL`` or the local
default) when it is reachable.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, select

from benchmarks._ai_search import scratch_postgres
from server.app import create_app
from server.cli import _alembic_upgrade
from server.db import make_engine, make_sessionmaker, transaction
from server.formats import coco
from server.formats._source import BATCH, ExportJob
from server.models import Image, ImageLabel, LabelObjectRow, Project
from server.settings import Settings

IMPORT_IMAGES, LABELS_PER_IMAGE = 100_000, 2
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
    t0 = time.perf_counter()
    size = 0
    async for chunk in coco.export(job):
        size += len(chunk)
    elapsed = time.perf_counter() - t0
    # Traced run: the peak once a fifth of the images are out, and at the end.
    tracemalloc.start()
    chunks, early = 0, 0.0
    async for _chunk in coco.export(job):
        chunks += 1
        if chunks == 1 + EXPORT_IMAGES // 5 // BATCH:  # the opening, then one chunk per batch
            early = tracemalloc.get_traced_memory()[1]
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"objects": len(rows), "export_s": elapsed, "bytes": size, "early_peak_mb": early / 2**20,
            "peak_mb": peak / 2**20}


async def run(url: str, data_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    settings = Settings(database_url=url, data_dir=data_dir, secret_key="bench-secret",
                        admin_email="bench@example.com", admin_password="bench-password-1",
                        password_time_cost=1, password_memory_kib=1024)
    await asyncio.to_thread(_alembic_upgrade, settings)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        return await bench_import(sessions, settings), await bench_export(sessions)
    finally:
        await engine.dispose()


async def main_async() -> None:
    results: list[tuple[str, dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        imp, exp = await run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", Path(tmp))
        results.append(("sqlite", imp, exp))
    async with scratch_postgres() as url:
        if url is not None:
            with tempfile.TemporaryDirectory() as tmp:
                imp, exp = await run(url, Path(tmp))
            results.append(("postgresql", imp, exp))
    print("| database | CSV import 200k labels | baseline raw executemany | ratio | COCO export 10k img / 200k obj "
          "| output | peak Python memory after 2,000 images / after 10,000 |")
    print("|---|---|---|---|---|---|---|")
    for db, imp, exp in results:
        print(f"| {db} | {imp['import_s']:.1f} s (limit 60 s) | {imp['baseline_s']:.1f} s | "
              f"{imp['import_s'] / imp['baseline_s']:.1f}x | {exp['export_s']:.1f} s (limit 20 s) | "
              f"{exp['bytes'] / 2**20:.0f} MB | {exp['early_peak_mb']:.1f} MB / {exp['peak_mb']:.1f} MB |")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
