"""An upload's row statements: one statement per step whatever the number of files.

``server/_upload_save.py`` calls these inside its transactions, under the content locks. On
PostgreSQL each step is one statement taking the request's rows as one JSON parameter (cast to
``jsonb`` once), as ``server/_pg_writes.py`` does for edits:

- the content lookup joins the array to the unique ``(project_id, sha256)`` index. The
  ``sha256 IN ($2, ..., $1001)`` it replaces was a prepared statement whose generic plan
  (PostgreSQL's choice after five runs) cannot hash a list of parameters: before the table's
  statistics were analyzed (a project filling up) it scanned the project's rows comparing each
  with every parameter — ~0.3 s per 1,000-file request at 20,000 images, 3.5 s at 19,000 in
  EXPLAIN ANALYZE, most of PostgreSQL's extra time in ``benchmarks/uploads.py``;
- the intents go in one ``INSERT ... SELECT`` instead of an ``executemany`` (one execution per
  row in the backend);
- the image rows go in one ``INSERT ... SELECT ... RETURNING id, sha256`` (ids in the order
  of the rows) instead of a VALUES list of ~11 parameters per row that PostgreSQL parses and
  plans on every request.

SQLite runs in this process, where a statement per row costs no round trip: it keeps the ORM's
statements, in chunks under its limit on parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server._pg_writes import json_text
from server.db import is_postgresql
from server.models import Image, UploadIntent

__all__ = ["CHUNK_ROWS", "existing", "insert_images", "insert_intents"]

CHUNK_ROWS = 5000  # ids per IN (...) list on SQLite (it allows 32766 parameters)

_EXISTING = text(
    "SELECT i.sha256, i.id FROM jsonb_array_elements_text(CAST(:shas AS jsonb)) AS s(sha) "
    "JOIN images AS i ON i.project_id = :project_id AND i.sha256 = s.sha"
).bindparams(bindparam("project_id", type_=Integer()), bindparam("shas", type_=String())
             ).columns(sha256=String(), id=Integer())

_INTENTS = text(
    "INSERT INTO upload_intents (token, sha256, created_at) "
    "SELECT :token, s.sha, :now FROM jsonb_array_elements_text(CAST(:shas AS jsonb)) AS s(sha)"
).bindparams(bindparam("token", type_=String()), bindparam("shas", type_=String()),
             bindparam("now", type_=DateTime(timezone=True)))

_IMAGES = text(
    "INSERT INTO images (project_id, name, sha256, mime, size_bytes, width, height, "
    "uploaded_by, uploaded_at, auto_labeled, object_count, state) "
    "SELECT :project_id, e.r->>'name', e.r->>'sha256', e.r->>'mime', "
    "CAST(e.r->>'size_bytes' AS bigint), CAST(e.r->>'width' AS integer), "
    "CAST(e.r->>'height' AS integer), :user_id, :now, false, 0, 'new' "
    "FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS e(r, n) "
    "ORDER BY e.n RETURNING id, sha256"
).bindparams(bindparam("project_id", type_=Integer()), bindparam("user_id", type_=Integer()),
             bindparam("rows", type_=String()), bindparam("now", type_=DateTime(timezone=True))
             ).columns(id=Integer(), sha256=String())


async def existing(session: AsyncSession, project_id: int, shas: Sequence[str]) -> dict[str, int]:
    """The project's images holding one of ``shas``: ``{sha: image id}``."""
    if not shas:
        return {}
    if is_postgresql(session):
        rows = await session.execute(_EXISTING, {"shas": json_text(list(shas)),
                                                 "project_id": project_id})
        return {sha: image_id for sha, image_id in rows}
    found: dict[str, int] = {}
    for start in range(0, len(shas), CHUNK_ROWS):
        rows = await session.execute(select(Image.sha256, Image.id).where(
            Image.project_id == project_id, Image.sha256.in_(shas[start:start + CHUNK_ROWS])))
        found.update({sha: image_id for sha, image_id in rows})
    return found


async def insert_intents(session: AsyncSession, token: str, shas: Sequence[str],
                         now: datetime) -> None:
    if not shas:
        return
    if is_postgresql(session):
        await session.execute(_INTENTS, {"token": token, "shas": json_text(list(shas)),
                                         "now": now})
        return
    await session.execute(insert(UploadIntent), [
        {"token": token, "sha256": sha, "created_at": now} for sha in shas])


async def insert_images(session: AsyncSession, project_id: int, user_id: int,
                        rows: Sequence[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Insert new images (``rows``: name, sha256, mime, size_bytes, width, height, each sha
    once), their ids ascending in the order of ``rows``; returns ``{sha: new image id}``."""
    if not rows:
        return {}
    if is_postgresql(session):
        result = await session.execute(_IMAGES, {"project_id": project_id, "user_id": user_id,
                                                 "now": now, "rows": json_text(list(rows))})
        return {sha: image_id for image_id, sha in result}
    result = await session.execute(insert(Image).returning(Image.id, Image.sha256), [
        {**row, "project_id": project_id, "uploaded_by": user_id, "uploaded_at": now,
         "auto_labeled": False, "object_count": 0} for row in rows])
    return {sha: image_id for image_id, sha in result}
