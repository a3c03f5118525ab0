"""Suggestions and similarity at scale, for ``benchmarks.ai``: a project of 100,000 images with
synthetic 1280-d vectors (``lite0@1``, float16, inserted directly) in 20 clusters, 1,000 of them
labeled by people (50 per cluster).

Timed through the real routes on the app in process (auth, the cache's version check, the
labeled examples read, the k-NN vote): ``POST /suggestions`` for one image, the first request
(building the project's in-memory snapshot and choosing the feature) apart from the rest, and
``GET .../similar`` for one image (a scan of all 100,000 vectors). The baseline, measured in the
same run: brute-force numpy over the same vectors held as float32 in memory, no database: one
matrix-vector product against all 100,000, then the same vote among the labeled ones.

On SQLite (a temporary file) and on PostgreSQL (``LABELHUB_TEST_POSTGRES_URL`` or the local
default) when it is reachable.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from sqlalchemy import insert, select

from server.ai.features import LITE0
from server.ai.vectors import encode, knn_scores, normalize
from server.app import create_app
from server.cli import _alembic_upgrade
from server.db import make_engine, make_sessionmaker, transaction
from server.models import Image, ImageEmbedding, ImageLabel, LabelDef, Project, utcnow
from server.settings import Settings

__all__ = ["EMAIL", "IMAGES", "PASSWORD", "scratch_postgres", "search_rows", "signed_in"]

IMAGES, DIM, CLUSTERS, LABELED_PER_CLUSTER = 100_000, 1280, 20, 50
REQUESTS = 40
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
EMAIL, PASSWORD = "bench@example.com", "bench-password-1"


@asynccontextmanager
async def signed_in(app: Any, request_timeout: float) -> AsyncIterator[httpx.AsyncClient]:
    """The app started and an in-process client signed in as the bench admin (by bearer token:
    the login's cookie cleared)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     timeout=request_timeout) as c:
            token = (await c.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
                     ).json()["token"]
            c.headers["Authorization"] = f"Bearer {token}"
            c.cookies.clear()
            yield c


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str | None]:
    """A new, empty PostgreSQL database's URL (dropped afterwards), or None when the server is
    not reachable (said on stdout)."""
    base = os.environ.get("LABELHUB_TEST_POSTGRES_URL") or PG_DEFAULT
    name = f"lh_bench_{uuid.uuid4().hex[:8]}"
    try:
        await _pg_admin(base, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL skipped: {exc}")
        yield None
        return
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _table(model: Any) -> Any:
    return model.__table__  # Core table: executemany without ORM overhead


def vectors(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = normalize(rng.normal(size=(CLUSTERS, DIM))) * 1.2
    y = rng.integers(0, CLUSTERS, IMAGES)
    out = np.empty((IMAGES, DIM), np.float32)
    for start in range(0, IMAGES, 10_000):
        part = slice(start, start + 10_000)
        out[part] = normalize(centers[y[part]] + rng.normal(size=(len(y[part]), DIM)) / np.sqrt(DIM))
    return out, y


async def _fill(sessions: Any, vecs: np.ndarray, y: np.ndarray) -> tuple[int, list[int], list[int]]:
    """Insert the project, images, vectors and labels; returns (project, image ids, labeled)."""
    async with transaction(sessions) as s:
        project = Project(name="bench", description="", seq=0, settings={})
        s.add(project)
        await s.flush()
        pid = project.id
        labels = [LabelDef(project_id=pid, name=f"class {c:02d}", color="#4c9aff")
                  for c in range(CLUSTERS)]
        s.add_all(labels)
        await s.flush()
        label_ids = [label.id for label in labels]
    now = utcnow()
    shas = [hashlib.sha256(f"bench/{i}".encode()).hexdigest() for i in range(IMAGES)]
    for start in range(0, IMAGES, 5_000):
        async with transaction(sessions) as s:
            conn = await s.connection()
            await conn.execute(insert(_table(Image)), [
                {"project_id": pid, "name": f"img_{i:06d}.jpg", "sha256": shas[i], "mime": "image/jpeg",
                 "size_bytes": 1, "width": 640, "height": 480, "uploaded_at": now,
                 "auto_labeled": False, "object_count": 0} for i in range(start, min(start + 5_000, IMAGES))])
            await conn.execute(insert(_table(ImageEmbedding)), [
                {"sha256": shas[i], "feature": LITE0, "dim": DIM, "dtype": "float16",
                 "vector": encode(vecs[i]), "created_at": now}
                for i in range(start, min(start + 5_000, IMAGES))])
    async with transaction(sessions) as s:
        ids = list((await s.execute(select(Image.id).where(Image.project_id == pid)
                                    .order_by(Image.id))).scalars())
        rows = np.concatenate([np.flatnonzero(y == c)[:LABELED_PER_CLUSTER] for c in range(CLUSTERS)])
        conn = await s.connection()
        await conn.execute(insert(_table(ImageLabel)), [
            {"image_id": ids[r], "label_id": label_ids[int(y[r])], "is_default": True,
             "source": "manual", "created_at": now} for r in rows])
        labeled = [ids[r] for r in rows]
    return pid, ids, labeled


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


async def _measure(url: str, data_dir: Path) -> dict[str, float]:
    settings = Settings(database_url=url, data_dir=data_dir, secret_key="bench", admin_email=EMAIL,
                        admin_password=PASSWORD, password_time_cost=1, password_memory_kib=1024)
    await asyncio.to_thread(_alembic_upgrade, settings)
    vecs, y = vectors()
    engine = make_engine(url)
    try:
        pid, ids, labeled = await _fill(make_sessionmaker(engine), vecs, y)
    finally:
        await engine.dispose()
    app = create_app(settings)
    rng = np.random.default_rng(1)
    unlabeled = sorted(set(ids) - set(labeled))
    queries = [int(q) for q in rng.choice(unlabeled, REQUESTS + 1, replace=False)]
    out: dict[str, float] = {}
    async with signed_in(app, request_timeout=120) as c:
        url_s = f"/api/v1/projects/{pid}/suggestions"
        t0 = time.perf_counter()
        first = await c.post(url_s, json={"images": [queries[0]]})
        out["cold_s"] = time.perf_counter() - t0
        assert first.status_code == 200, first.text
        times, correct = [], 0
        row_of = {image_id: i for i, image_id in enumerate(ids)}
        for q in queries[1:]:
            t0 = time.perf_counter()
            resp = await c.post(url_s, json={"images": [q]})
            times.append(time.perf_counter() - t0)
            best = resp.json()["items"][0]["labels"][0]["label"]
            correct += best == f"class {int(y[row_of[q]]):02d}"
        out["suggest_p50"], out["suggest_p95"] = _p(times, 50), _p(times, 95)
        out["accuracy"] = correct / REQUESTS
        times = []
        for q in queries[1:21]:
            t0 = time.perf_counter()
            resp = await c.get(f"/api/v1/projects/{pid}/images/{q}/similar?limit=20")
            times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, resp.text
        out["similar_p50"] = _p(times, 50)
    # The baseline: brute force over all vectors in memory, float32, no database.
    rows = np.array([row_of[i] for i in labeled])
    onehot = np.eye(CLUSTERS, dtype=bool)[y[rows]]
    times = []
    for q in queries[1:]:
        t0 = time.perf_counter()
        sims = vecs @ vecs[row_of[q]]
        knn_scores(sims[rows][None, :], onehot)
        times.append(time.perf_counter() - t0)
    out["baseline_p50"] = _p(times, 50)
    return out


async def _pg_admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _all() -> list[tuple[str, dict[str, float]]]:
    results: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("sqlite", await _measure(f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}", Path(tmp))))
    async with scratch_postgres() as url:
        if url is not None:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(("postgresql", await _measure(url, Path(tmp))))
    return results


def search_rows() -> list[str]:
    """The table's lines (markdown)."""
    lines = [f"| database | suggestions for 1 image in {IMAGES:,} (p50 / p95, goal p50 < 50 ms) "
             "| baseline: brute-force numpy, in memory (p50) | first request (builds the cache) "
             "| similar images, 1 query (p50) | top-1 accuracy |", "|---|---|---|---|---|---|"]
    for db, r in asyncio.run(_all()):
        lines.append(f"| {db} | {r['suggest_p50']:.1f} / {r['suggest_p95']:.1f} ms "
                     f"| {r['baseline_p50']:.1f} ms | {r['cold_s']:.1f} s | {r['similar_p50']:.0f} ms "
                     f"| {r['accuracy']:.2f} |")
    return lines


if __name__ == "__main__":
    print("\n".join(search_rows()), flush=True)
