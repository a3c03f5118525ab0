"""server/_upload_rows.py on each database: the content lookup, the intents and the image rows
of an upload, each one statement whatever the number of files."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from starlette.applications import Starlette

from server._upload_rows import existing, insert_images, insert_intents
from server.db import transaction
from server.models import Image, UploadIntent, utcnow
from tests.conftest import Api, make_project


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _row(i: int, name: str) -> dict[str, object]:
    return {"name": name, "sha256": _sha(i), "mime": "image/png", "size_bytes": 100 + i,
            "width": 48, "height": 32}


async def test_images_are_inserted_and_found_by_content_in_their_project_only(
        app: Starlette, admin: Api) -> None:
    a, b = await make_project(admin, "a"), await make_project(admin, "b")
    names = ["plain.png", 'quote "é" \\ back.png', "日本/猫.png"]
    names += [f"{i}.png" for i in range(3, 1200)]
    now = utcnow()
    async with transaction(app.state.sessions) as session:
        ids = await insert_images(session, a, admin.user["id"],
                                  [_row(i, n) for i, n in enumerate(names)], now)
        assert await insert_images(session, b, admin.user["id"], [], now) == {}
    assert sorted(ids) == sorted(_sha(i) for i in range(len(names)))
    assert [ids[_sha(i)] for i in range(len(names))] == sorted(ids.values())  # upload order
    async with transaction(app.state.sessions) as session:
        wanted = [_sha(i) for i in (0, 1, 2, 1199, 5000)]
        assert await existing(session, a, wanted) == {s: ids[s] for s in wanted[:4]}
        assert await existing(session, b, wanted) == {}
        assert await existing(session, a, []) == {}
        rows = {img.sha256: img for img in (await session.execute(
            select(Image).where(Image.id.in_([ids[s] for s in wanted[:3]])))).scalars()}
    first = rows[_sha(1)]
    assert (first.name, first.project_id, first.uploaded_by, first.size_bytes) == (
        names[1], a, admin.user["id"], 101)
    assert (first.mime, first.width, first.height, first.state, first.object_count) == (
        "image/png", 48, 32, "new", 0)
    assert first.uploaded_at == now and not first.auto_labeled
    assert rows[_sha(2)].name == "日本/猫.png"


async def test_intents_are_inserted_under_their_token(app: Starlette) -> None:
    shas = [_sha(i) for i in range(1500)]
    now = utcnow()
    async with transaction(app.state.sessions) as session:
        await insert_intents(session, "t" * 32, shas, now)
        await insert_intents(session, "u" * 32, [], now)
    async with transaction(app.state.sessions) as session:
        rows = (await session.execute(select(UploadIntent.token, UploadIntent.sha256,
                                              UploadIntent.created_at))).all()
    assert sorted(r.sha256 for r in rows) == sorted(shas)
    assert {(r.token, r.created_at) for r in rows} == {("t" * 32, now)}
