"""The demo project: generated images worth labeling, label definitions, a few classifications.

``seed_demo`` does nothing when any project exists, so start-up may call it every time.
The images are drawn here with NumPy/OpenCV (no third-party pictures): textured backgrounds
with circles, squares, stars and rings (a polygon with a hole).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from server._upload_save import begin_upload, finish_upload, prepare_all, write_files
from server._uploads import Staged, from_bytes
from server.db import make_engine, make_sessionmaker, transaction
from server.models import LabelDef, Membership, Project, User
from server.permissions import ALL
from server.settings import Settings, get_settings
from server.storage import open_store

WIDTH, HEIGHT = 640, 480
COUNT = 8
LABELS = [("circle", "#e6194b", 1), ("square", "#3cb44b", 2), ("star", "#4363d8", 3),
          ("ring", "#f58231", 4)]
# Classification labels applied to a couple of images: index -> names (the first is the default).
CLASSIFIED = {0: ["circle", "ring"], 3: ["star"], 5: ["square"]}


def _background(rng: np.random.Generator, kind: int) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (HEIGHT, WIDTH)).astype(np.float32), (0, 0), 3)
    if kind == 0:  # wood grain
        v = 0.5 + 0.5 * np.sin(xx / 9 + 4 * noise + np.sin(yy / 40))
        base, tint = np.array([40, 80, 120]), np.array([60, 70, 70])
    elif kind == 1:  # grass
        v = 0.5 + 0.25 * noise + 0.2 * rng.random((HEIGHT, WIDTH)).astype(np.float32)
        base, tint = np.array([30, 90, 30]), np.array([40, 110, 50])
    elif kind == 2:  # sky gradient with clouds
        v = yy / HEIGHT + 0.15 * cv2.GaussianBlur(noise, (0, 0), 12) * 6
        base, tint = np.array([200, 150, 90]), np.array([50, 60, 80])
    else:  # tiles
        v = (((xx // 64) + (yy // 64)) % 2) * 0.5 + 0.15 * noise + 0.25
        base, tint = np.array([110, 110, 120]), np.array([90, 90, 80])
    v = np.clip(v, 0, 1)[..., None]
    return np.clip(base + tint * v, 0, 255).astype(np.uint8)


def _star(cx: float, cy: float, r: float, turn: float) -> np.ndarray:
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * 0.45
        a = turn + i * math.pi / 5
        pts.append((cx + rad * math.sin(a), cy - rad * math.cos(a)))
    return np.array(pts, np.int32)


def _square(cx: float, cy: float, r: float, turn: float) -> np.ndarray:
    box = cv2.boxPoints(((cx, cy), (2 * r, 2 * r), math.degrees(turn)))
    return box.astype(np.int32)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    hue = int(rng.integers(0, 180))
    hsv = np.array([[[hue, 200, 230]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def render(index: int) -> np.ndarray:
    """One 640x480 scene, the same every time for the same index."""
    rng = np.random.default_rng(1000 + index)
    img = _background(rng, index % 4)
    background = img.copy()
    for n in range(4 + index % 3):
        kind = (index + n) % 4
        r = float(rng.uniform(35, 75))
        cx, cy = float(rng.uniform(r, WIDTH - r)), float(rng.uniform(r, HEIGHT - r))
        color, turn = _color(rng), float(rng.uniform(0, math.pi))
        shadow = (int(cx) + 6, int(cy) + 6)
        if kind == 0:
            cv2.circle(img, shadow, int(r), (25, 25, 25), -1, cv2.LINE_AA)
            cv2.circle(img, (int(cx), int(cy)), int(r), color, -1, cv2.LINE_AA)
            cv2.circle(img, (int(cx - r / 3), int(cy - r / 3)), int(r / 4),
                       tuple(min(255, c + 60) for c in color), -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.fillPoly(img, [_square(cx + 6, cy + 6, r, turn)], (25, 25, 25), cv2.LINE_AA)
            cv2.fillPoly(img, [_square(cx, cy, r, turn)], color, cv2.LINE_AA)
        elif kind == 2:
            cv2.fillPoly(img, [_star(cx, cy, r * 1.2, turn)], color, cv2.LINE_AA)
            cv2.polylines(img, [_star(cx, cy, r * 1.2, turn)], True, (20, 20, 20), 2, cv2.LINE_AA)
        else:  # a ring: the background shows through the hole
            mask = np.zeros(img.shape[:2], np.uint8)
            cv2.circle(mask, (int(cx), int(cy)), int(r), 255, -1, cv2.LINE_AA)
            cv2.circle(mask, (int(cx), int(cy)), int(r * 0.5), 0, -1, cv2.LINE_AA)
            ring = np.full_like(img, color)
            alpha = (mask.astype(np.float32) / 255)[..., None]
            img = (ring * alpha + img * (1 - alpha)).astype(np.uint8)
            hole = np.zeros_like(mask)
            cv2.circle(hole, (int(cx), int(cy)), int(r * 0.5) - 1, 255, -1)
            img[hole > 0] = background[hole > 0]
    return img


def render_all(count: int = COUNT) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        ok, buf = cv2.imencode(".jpg", render(i), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append((f"shapes/scene-{i + 1:02d}.jpg", bytes(buf)))
    return out


def _stage(limit: int) -> list[Staged]:
    return [from_bytes(name, data, limit, CLASSIFIED.get(i, []))
            for i, (name, data) in enumerate(render_all())]


async def _any_project(session: AsyncSession) -> bool:
    return (await session.execute(select(Project.id).limit(1))).first() is not None


async def _first_admin(sessions: async_sessionmaker[AsyncSession]) -> int | None:
    async with sessions() as session:
        return (await session.execute(
            select(User.id).where(User.is_admin.is_(True)).order_by(User.id).limit(1))).scalar()


async def seed_demo(app_or_sessions: Any, settings: Settings | None = None,
                    owner_user_id: int | None = None) -> int | None:
    """Create the demo project; ``None`` (and no change) if any project exists.

    ``app_or_sessions`` is the app (its settings are the default) or a session factory. The
    owner defaults to the first site admin; with no admin there is no demo either.
    """
    state = getattr(app_or_sessions, "state", None)
    sessions: async_sessionmaker[AsyncSession] = getattr(state, "sessions", app_or_sessions)
    settings = settings or getattr(state, "settings", None) or get_settings()
    if owner_user_id is None:
        owner_user_id = await _first_admin(sessions)
        if owner_user_id is None:
            return None
    async with sessions() as session:
        if await _any_project(session):
            return None
    staged = await run_in_threadpool(_stage, settings.max_upload_bytes)
    await prepare_all(staged, settings.max_upload_bytes)
    # The files first, noted as an upload's (project 0 holds nothing: all are new); when
    # another process seeds meanwhile, the sweep removes them (server/_upload_save.py).
    upload = await begin_upload(sessions, 0, staged)
    await write_files(sessions, open_store(settings), staged, upload)
    async with transaction(sessions) as session:
        if await _any_project(session):  # someone else seeded meanwhile
            return None
        project = Project(name="Demo project", created_by=owner_user_id, seq=0, settings={},
                          description="Generated shapes to try labeling on: circles, "
                          "squares, stars and rings.")
        session.add(project)
        await session.flush()
        session.add(Membership(project_id=project.id, user_id=owner_user_id, role="owner",
                               privileges=int(ALL), settings={}))
        session.add_all(LabelDef(project_id=project.id, name=name, color=color, shortcut=key)
                        for name, color, key in LABELS)
        await session.flush()
        await finish_upload(session, project.id, owner_user_id, staged, upload)
        return project.id


async def seed_with_settings(settings: Settings) -> int | None:
    """Seed the database the settings point at, owned by the first site admin."""
    engine = make_engine(settings.resolved_database_url)
    try:
        return await seed_demo(make_sessionmaker(engine), settings)
    finally:
        await engine.dispose()
