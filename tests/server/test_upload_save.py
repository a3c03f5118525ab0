"""Uploads on each store (local directory, S3 on a real SeaweedFS) and each database: what the
answer reports, bytes served with ETags, an object store outage (503, nothing half-written),
the sweep of a crashed upload's files, and the file limit (server/_upload_save.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from server import images, offload
from server._upload_save import begin_upload, finish_upload, prepare_all, sweep, write_files
from server._uploads import from_bytes
from server.app import create_app
from server.db import transaction
from server.errors import ApiError
from server.models import Image, UploadIntent
from server.settings import Settings
from server.storage import open_store, original_key, thumb_key
from tests._seaweed import Seaweed
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, login, make_project, make_settings
from tests.server._images import by_name, files, png, upload


async def _count(app: Starlette, model: type) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_upload_serve_and_delete_on_each_store(store_app: Starlette, store_admin: Api,
                                                     store_settings: Settings) -> None:
    store = open_store(store_settings)
    pid = await make_project(store_admin)
    a, b = png(1, 300, 200), png(2)
    resp = await upload(store_admin, pid, files(("a.png", a), ("b.png", b), ("again.png", a),
                                                ("notes.txt", b"hello")), labels="cat")
    assert resp.status_code == 201, resp.text
    got = by_name(resp)
    assert [got[n]["ok"] for n in ("a.png", "b.png", "again.png", "notes.txt")] == [
        True, True, True, False]
    assert (got["a.png"]["duplicate"], got["again.png"]["duplicate"]) == (False, True)
    assert got["again.png"]["image"]["id"] == got["a.png"]["image"]["id"]
    assert got["notes.txt"]["error"]["code"] == "not_an_image"
    assert [lab["name"] for lab in got["a.png"]["image"]["labels"]] == ["cat"]
    assert await _count(store_app, UploadIntent) == 0
    sha = got["a.png"]["image"]["sha256"]
    assert await store.get(original_key(sha)) == a

    iid = got["a.png"]["image"]["id"]
    file = await store_admin.client.get(f"/api/v1/images/{iid}/file")
    assert file.status_code == 200 and file.content == a
    assert file.headers["etag"] == f'"{sha}"' and "immutable" in file.headers["cache-control"]
    assert file.headers["content-type"] == "image/png"
    assert 'filename="a.png"' in file.headers["content-disposition"]
    again = await store_admin.client.get(f"/api/v1/images/{iid}/file",
                                         headers={"If-None-Match": file.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    thumb = await store_admin.client.get(f"/api/v1/images/{iid}/thumbnail")
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    assert thumb.headers["etag"] == f'"{sha}-thumb"'

    # The same files again: all duplicates, nothing new written or inserted.
    resp = await upload(store_admin, pid, files(("a.png", a), ("b.png", b)))
    assert [r["duplicate"] for r in resp.json()["results"]] == [True, True]
    assert await _count(store_app, Image) == 2

    assert (await store_admin.client.delete(f"/api/v1/images/{iid}")).status_code == 204
    assert await store.size(original_key(sha)) is None
    assert await store.size(thumb_key(sha)) is None
    kept = got["b.png"]["image"]["sha256"]
    assert await store.size(original_key(kept)) == len(b)


async def test_an_object_store_outage_fails_uploads_with_503_and_writes_nothing(
        seaweed: Seaweed, s3_url: str, database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "data", storage_url=s3_url,
                             storage_timeout_seconds=2.0)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        api = await login(application, ADMIN_EMAIL, ADMIN_PASSWORD)
        pid = await make_project(api)
        batch = files(("a.png", png(5)), ("b.png", png(6)))
        seaweed.stop()
        try:
            resp = await upload(api, pid, batch)
        finally:
            seaweed.resume()
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "storage_unavailable"
        assert await _count(application, Image) == 0
        # The store is back: the same request goes through.
        resp = await upload(api, pid, batch)
        assert resp.status_code == 201, resp.text
        assert [r["duplicate"] for r in resp.json()["results"]] == [False, False]
        assert await _count(application, Image) == 2
        await api.client.aclose()


async def test_local_files_are_written_by_the_worker_pool(admin: Api, settings: Settings) -> None:
    """Issue 19: thousands of small files are thousands of syscalls; they run in the offload
    pool, not in the serving process (a tiny PNG decodes inline: the one job is the write)."""
    pid = await make_project(admin)
    pool = offload.get()
    before = pool.submitted
    resp = await upload(admin, pid, files(("a.png", png(1))))
    assert resp.status_code == 201, resp.text
    assert pool.submitted == before + 1
    sha = resp.json()["results"][0]["image"]["sha256"]
    assert (settings.data_dir / original_key(sha)).read_bytes() == png(1)
    assert (settings.data_dir / thumb_key(sha)).read_bytes()[:2] == b"\xff\xd8"


async def test_a_crashed_uploads_files_are_swept_at_startup(settings: Settings) -> None:
    """A process that wrote an upload's files and died before its commit: the next start
    (grace 0 here; 10 minutes by default) removes them, and keeps content an image holds."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        api = await login(application, ADMIN_EMAIL, ADMIN_PASSWORD)
        pid = await make_project(api)
        kept = png(7)
        assert (await upload(api, pid, files(("kept.png", kept)))).status_code == 201
        await api.client.aclose()
        # What the dying process did: note the intents, write the files; no commit of rows.
        staged = [from_bytes("lost.png", png(8), 1 << 20), from_bytes("kept.png", kept, 1 << 20)]
        await prepare_all(staged, 1 << 20)
        shas = [item.image.sha256 for item in staged if item.image is not None]
        pending = await begin_upload(application.state.sessions, pid, staged)
        await write_files(application.state.sessions, open_store(settings), staged, pending)
        assert pending.new == [shas[0]]  # kept.png was in the project already
    store = open_store(settings)
    assert await store.size(original_key(shas[0])) is not None

    restarted = create_app(settings.model_copy(update={"upload_grace_seconds": 0}))
    async with restarted.router.lifespan_context(restarted):
        assert await _count(restarted, UploadIntent) == 0
        assert await store.size(original_key(shas[0])) is None
        assert await store.size(thumb_key(shas[0])) is None
        assert await store.get(original_key(shas[1])) == kept
        assert await _count(restarted, Image) == 1


async def test_a_request_over_the_file_limit_is_413_naming_it(
        admin: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = await make_project(admin)
    monkeypatch.setattr(images, "MAX_FILES", 3)
    resp = await upload(admin, pid, files(*[(f"{i}.png", png(i)) for i in range(4)]))
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert error["code"] == "too_many_files" and "3 files" in error["message"]
    resp = await upload(admin, pid, files(*[(f"{i}.png", png(i)) for i in range(3)]))
    assert resp.status_code == 201


async def test_an_upload_slower_than_the_grace_is_refused_not_committed_without_files(
        app: Starlette, admin: Api, settings: Settings) -> None:
    pid = await make_project(admin)
    staged = [from_bytes("slow.png", png(9), 1 << 20)]
    await prepare_all(staged, 1 << 20)
    store = open_store(settings)
    pending = await begin_upload(app.state.sessions, pid, staged)
    await write_files(app.state.sessions, store, staged, pending)
    # Another process's sweep, with the upload still unfinished past the grace:
    assert await sweep(app.state.sessions, store, grace_seconds=0) == 1
    with pytest.raises(ApiError) as err:
        async with transaction(app.state.sessions) as session:
            await finish_upload(session, pid, admin.user["id"], staged, pending)
    assert (err.value.status, err.value.code) == (503, "upload_expired")
    assert await _count(app, Image) == 0
