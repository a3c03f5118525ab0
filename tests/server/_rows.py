"""Test data written straight into the database: images (no files needed by labels or formats)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from server.db import transaction
from server.models import Image, OpLogEntry


async def make_images(app: Starlette, project_id: int, names: Sequence[str],
                      width: int = 64, height: int = 48) -> list[int]:
    async with transaction(app.state.sessions) as session:
        rows = [Image(project_id=project_id, name=name, mime="image/png", size_bytes=1,
                      sha256=hashlib.sha256(f"{project_id}/{name}".encode()).hexdigest(),
                      width=width, height=height) for name in names]
        session.add_all(rows)
        await session.flush()
        return [r.id for r in rows]


async def op_log(app: Starlette, project_id: int) -> list[dict[str, Any]]:
    async with transaction(app.state.sessions) as session:
        rows = (await session.execute(select(OpLogEntry).where(OpLogEntry.project_id == project_id)
                                      .order_by(OpLogEntry.seq))).scalars().all()
        return [{"seq": r.seq, "image_id": r.image_id, "kind": r.kind, "op": r.op,
                 "inverse": r.inverse, "origin": r.origin} for r in rows]
