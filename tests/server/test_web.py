"""Request bodies at the edge: malformed, too deep or not Unicode is a 400 and stores nothing."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.responses import JSONResponse

from server._web import BulkJSONResponse
from tests.conftest import Api, make_project
from tests.server._rows import make_images, op_log

SURROGATE = '"\\udc00"'  # legal JSON syntax, but no Unicode character: nothing may store it


async def test_a_lone_surrogate_in_a_body_is_refused(admin: Api) -> None:
    before = (await admin.client.get("/api/v1/projects")).json()
    resp = await admin.client.post("/api/v1/projects", content='{"name": ' + SURROGATE + "}",
                                   headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_text"
    assert (await admin.client.get("/api/v1/projects")).json() == before


async def test_deep_nesting_is_a_400_not_a_500(admin: Api) -> None:
    resp = await admin.client.post("/api/v1/projects", content='{"name": ' + "[" * 5000 + "]" * 5000 + "}",
                                   headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_json"
    assert "deeper" in resp.json()["error"]["message"]


async def test_an_import_with_a_lone_surrogate_stores_nothing_and_ops_still_read(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"])
    obj = '{"id": "o1", "type": "point", "label": "x", "geometry": {"x": 1, "y": 1}, "attributes": {"note": ' \
          + SURROGATE + "}}"
    body = '{"images": [{"name": "a.png", "objects": [' + obj + "]}]}"
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, content=body)
    assert resp.status_code == 400, resp.text
    assert "surrogate" in resp.json()["error"]["message"]
    assert await op_log(app, pid) == []
    assert (await admin.client.get(f"/api/v1/projects/{pid}/ops")).status_code == 200
    export = await admin.client.get(f"/api/v1/projects/{pid}/export", params={"format": "json"})
    assert export.status_code == 200 and json.loads(export.content)["images"][0]["objects"] == []


def test_bulk_json_answers_as_starlettes_encoder_would() -> None:
    """orjson's bytes are the standard library's for image items (non-ASCII names, nesting,
    None), and what orjson refuses (an integer past 64 bits) is still answered."""
    items = {"results": [
        {"name": "Ünïcode/東京 ✓.png", "ok": True, "duplicate": False,
         "image": {"id": 7, "labels": [{"name": "çat", "is_default": True}], "lock": None,
                   "uploaded_at": "2026-12-03T17:21:16.316418Z"}},
        {"name": "bad.txt", "ok": False, "error": {"code": "not_an_image", "message": "x"}},
    ], "total": 2}
    assert BulkJSONResponse(items).body == JSONResponse(items).body
    big = {"id": 2**70, "name": "n"}
    assert BulkJSONResponse(big).body == JSONResponse(big).body
    assert json.loads(BulkJSONResponse(big).body)["id"] == 2**70
