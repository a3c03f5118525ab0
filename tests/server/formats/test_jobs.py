"""Big imports and exports as jobs: ``?async=1`` (or an import over the size threshold) -> 202
and a job; a worker runs it with progress; the export's file is downloadable, the import's
report is the job's result (all or nothing, as in a request)."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette

from server.storage import open_store
from tests.conftest import Api, make_project
from tests.jobs.conftest import ended, running_worker, wait_job
from tests.server._rows import make_images
from tests.server.formats.test_labelstudio import ls_task, rect
from tests.server.formats.test_native import export
from tests.server.formats.test_zip import cat_and_dog


async def test_an_export_job_writes_a_downloadable_snapshot(admin: Api, app: Starlette) -> None:
    pid = await cat_and_dog(admin, app)
    url = f"/api/v1/projects/{pid}/export"
    resp = await admin.client.get(url, params={"format": "cvat", "async": "1"})
    assert resp.status_code == 202, resp.text
    job = resp.json()["job"]
    assert job["kind"] == "export" and job["status"] == "queued"
    async with running_worker(app):
        state = await wait_job(app, job["id"], ended)
    assert state.status == "done", state
    assert (state.progress.done, state.progress.total) == (2, 2)
    result = state.result or {}
    file = await admin.client.get(result["download"])
    assert file.status_code == 200
    direct = await admin.client.get(url, params={"format": "cvat"})
    assert file.content == direct.content  # the same snapshot: nothing changed in between
    assert file.headers["X-Labelhub-Seq"] == direct.headers["X-Labelhub-Seq"] == str(result["seq"])
    assert result["filename"] in file.headers["content-disposition"]
    other = await admin.client.get(f"/api/v1/projects/{pid}/transfers/{job['id'] + 999}/file")
    assert other.status_code == 404


async def test_import_jobs_report_like_the_request(admin: Api, app: Starlette,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pid = await make_project(admin, "Jobs")
    await make_images(app, pid, ["a.jpg"], 64, 48)
    url = f"/api/v1/projects/{pid}/import"
    good = [ls_task("a.jpg", [rect("r", "cat", 25, 25, 50, 50)])]
    bad = [ls_task("a.jpg", [rect("r", "cat", 90, 0, 50, 10)])]
    resp = await admin.client.post(url, params={"format": "labelstudio", "async": "1"}, json=bad)
    assert resp.status_code == 202, resp.text
    bad_job = resp.json()["job"]["id"]
    monkeypatch.setattr(app.state.settings, "import_job_mb", 0)  # any body is "big" now
    resp = await admin.client.post(url, params={"format": "labelstudio"}, json=good)
    assert resp.status_code == 202, resp.text
    good_job = resp.json()["job"]["id"]
    store = open_store(app.state.settings)  # the uploads wait in the store for a worker
    assert len([key async for key, _ in store.list("transfers/") if key.endswith(".upload")]) == 2
    async with running_worker(app):
        refused = await wait_job(app, bad_job, ended)
        applied = await wait_job(app, good_job, ended)
    assert refused.status == "done" and (refused.result or {})["status"] == 422
    assert refused.result["error"]["code"] == "import_refused"  # type: ignore[index]
    assert applied.status == "done" and (applied.result or {})["status"] == 200, applied
    assert applied.result["report"]["images_with_object_changes"] == 1  # type: ignore[index]
    [image] = json.loads(await export(admin, pid))["images"]
    assert image["objects"][0]["geometry"] == {"x": 16.0, "y": 12.0, "w": 32.0, "h": 24.0}
    assert [key async for key, _ in store.list("transfers/") if key.endswith(".upload")] == []
