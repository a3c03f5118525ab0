"""The embeddings store on SQLite and PostgreSQL: float16 round trip, key changes, deletion."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from starlette.applications import Starlette

from server.ai.embeddings import drop_retired, missing, read_vectors, save_vectors
from server.ai.features import HOG
from server.ai.vectors import decode, normalize
from server.db import transaction
from server.models import ImageEmbedding
from tests.ai._digits import cancel_queued, digits, embed, upload
from tests.conftest import Api, make_project


async def test_vectors_round_trip_as_float16(app: Starlette) -> None:
    vec = normalize(np.random.default_rng(0).normal(size=(1, 1280)))[0]
    async with transaction(app.state.sessions) as session:
        await save_vectors(session, "ab" * 32, {"x@1": vec})
    async with transaction(app.state.sessions) as session:
        rows = await read_vectors(session, "ab" * 32)
    dim, dtype, blob = rows["x@1"]
    assert (dim, dtype, len(blob)) == (1280, "float16", 2560)
    back = decode(blob, dim, dtype)
    assert np.abs(back - vec).max() < 1e-3
    # Saving again replaces the row (an upsert), never a duplicate-key error.
    async with transaction(app.state.sessions) as session:
        await save_vectors(session, "ab" * 32, {"x@1": -vec})
        assert decode((await read_vectors(session, "ab" * 32))["x@1"][2], 1280)[0] < 0


async def test_a_new_feature_key_is_computed_and_the_retired_one_dropped(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    images, _ = digits(per_class=1)
    items = await upload(admin, pid, [(f"{i}.png", d) for i, d in enumerate(images[:2])])
    await cancel_queued(admin, pid)
    shas = [i["sha256"] for i in items]
    async with transaction(app.state.sessions) as session:
        # Vectors of an older version of HOG, as a previous release stored them.
        for sha in shas:
            await save_vectors(session, sha, {"hog@0": np.ones(4, np.float32) / 2})
        assert [s for s, _ in await missing(session, pid, [HOG])] == shas
        assert await missing(session, pid, ["hog@0"]) == []

    state = await embed(app, pid, [HOG])
    assert state.status == "done" and state.result is not None
    assert state.result["embedded"] == 2 and state.result["retired_vectors"] == 2
    async with transaction(app.state.sessions) as session:
        assert await missing(session, pid, [HOG]) == []
        keys = set((await session.execute(select(ImageEmbedding.sha256, ImageEmbedding.feature))).all())
    assert keys == {(sha, HOG) for sha in shas}


async def test_vectors_go_with_the_last_image_of_their_content(app: Starlette, admin: Api) -> None:
    images, _ = digits(per_class=1)
    first, second = await make_project(admin, "A"), await make_project(admin, "B")
    a = (await upload(admin, first, [("a.png", images[0])]))[0]
    b = (await upload(admin, second, [("b.png", images[0]), ("c.png", images[1])]))
    assert a["sha256"] == b[0]["sha256"]
    for pid in (first, second):
        await cancel_queued(admin, pid)
        assert (await embed(app, pid, [HOG])).status == "done"

    async def shas() -> set[str]:
        async with app.state.sessions() as session:
            return set((await session.execute(select(ImageEmbedding.sha256))).scalars())

    assert await shas() == {a["sha256"], b[1]["sha256"]}
    assert (await admin.client.delete(f"/api/v1/images/{a['id']}")).status_code == 204
    assert await shas() == {a["sha256"], b[1]["sha256"]}  # project B still has that picture
    assert (await admin.client.delete(f"/api/v1/images/{b[0]['id']}")).status_code == 204
    assert await shas() == {b[1]["sha256"]}


async def test_retired_keys_of_other_projects_stay(app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    async with transaction(app.state.sessions) as session:
        await save_vectors(session, "cd" * 32, {"hog@0": np.ones(4, np.float32)})
        assert await drop_retired(session, pid, [HOG]) == 0
        assert "hog@0" in await read_vectors(session, "cd" * 32)


async def test_deleting_a_project_drops_the_vectors_only_it_held(app: Starlette, admin: Api) -> None:
    images, _ = digits(per_class=1)
    first, second = await make_project(admin, "A"), await make_project(admin, "B")
    a = await upload(admin, first, [("a.png", images[0]), ("b.png", images[1])])
    await upload(admin, second, [("a.png", images[0])])
    for pid in (first, second):
        await cancel_queued(admin, pid)
        assert (await embed(app, pid, [HOG])).status == "done"
    assert (await admin.client.delete(f"/api/v1/projects/{first}")).status_code == 204
    async with app.state.sessions() as session:
        left = set((await session.execute(select(ImageEmbedding.sha256))).scalars())
    assert left == {a[0]["sha256"]}
