"""Exports kept in the store (server/exports.py), on the local directory and on S3."""

from __future__ import annotations

import json

from starlette.applications import Starlette

from tests.conftest import Api, make_project
from tests.server._images import files, png, upload


async def test_an_export_is_written_to_the_store_listed_and_fetched(
        store_app: Starlette, store_admin: Api) -> None:
    pid = await make_project(store_admin)
    assert (await upload(store_admin, pid, files(("a.png", png(1)), ("b.png", png(2))))
            ).status_code == 201
    resp = await store_admin.client.post(f"/api/v1/projects/{pid}/exports?format=coco")
    assert resp.status_code == 201, resp.text
    saved = resp.json()
    assert saved["format"] == "coco" and saved["size_bytes"] > 0
    listed = (await store_admin.client.get(f"/api/v1/projects/{pid}/exports")).json()["exports"]
    assert listed == [{k: saved[k] for k in ("name", "size_bytes", "url")}]
    got = await store_admin.client.get(saved["url"])
    assert got.status_code == 200 and len(got.content) == saved["size_bytes"]
    assert "attachment" in got.headers["content-disposition"]
    assert sorted(i["file_name"] for i in json.loads(got.content)["images"]) == ["a.png", "b.png"]
    for bad in ("../../images/x", "nope.json"):
        assert (await store_admin.client.get(f"/api/v1/projects/{pid}/exports/{bad}")
                ).status_code == 404


async def test_exports_need_the_import_export_privilege(admin: Api, users: object) -> None:
    pid = await make_project(admin)
    outsider: Api = await users("outsider")  # type: ignore[operator]
    assert (await outsider.client.post(f"/api/v1/projects/{pid}/exports?format=json")
            ).status_code == 404
    assert (await outsider.client.get(f"/api/v1/projects/{pid}/exports")).status_code == 404
    assert (await admin.client.post(f"/api/v1/projects/{pid}/exports?format=nope")
            ).status_code == 422
