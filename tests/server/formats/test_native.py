"""Native JSON: lossless round trip, replace vs merge, dry run, all-or-nothing, op log."""

from __future__ import annotations

import io
import json
import zipfile

from starlette.applications import Starlette

from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub.conftest import LiveServer
from tests.server._rows import make_images, op_log
from tests.server.formats._seed import H, W, seeded_project


async def export(api: Api, pid: int, fmt: str = "json", **params: str) -> bytes:
    resp = await api.client.get(f"/api/v1/projects/{pid}/export", params={"format": fmt, **params})
    assert resp.status_code == 200, resp.text
    return resp.content


async def test_export_import_export_is_identical(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    first = await export(admin, pid)
    data = json.loads(first)
    a = data["images"][0]
    assert [(s["label"], s["is_default"]) for s in a["labels"]] == [("cat", False), ("dog", True)]
    assert {o["type"] for o in a["objects"]} == {"bbox", "polygon", "bitmap", "polyline", "point"}
    assert data["labels"][0] == {"name": "cat", "color": "#112233", "shortcut": 2}
    empty = await make_project(admin, "Empty")
    await make_images(app, empty, ["a.png", "b.png", "c.png"], W, H)
    resp = await admin.client.post(f"/api/v1/projects/{empty}/import", params={"format": "json"}, content=first)
    assert resp.status_code == 200, resp.text
    assert await export(admin, empty) == first


async def test_imports_go_through_the_op_log(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    log = await op_log(app, pid)
    assert {e["origin"] for e in log} == {"import"}
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    batch = next(e for e in log if e["kind"] == "batch")
    assert {o["kind"] for o in batch["op"]["ops"]} == {"create"}
    assert {o["kind"] for o in batch["inverse"]["ops"]} == {"delete"}


async def test_merge_keeps_and_replace_overrides(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    extra = {"images": [{"name": "b.png", "labels": ["owl"],
                         "objects": [{"id": "n1", "type": "point", "label": "x", "geometry": {"x": 1, "y": 1}}]}]}
    url = f"/api/v1/projects/{pid}/import"
    merged = await admin.client.post(url, params={"format": "json", "mode": "merge"}, json=extra)
    assert merged.status_code == 200, merged.text
    b = json.loads(await export(admin, pid))["images"][1]
    assert [s["label"] for s in b["labels"]] == ["cat", "owl"] and len(b["objects"]) == 2
    # The project setting "override labels when uploading JSON" picks replace.
    await admin.client.patch(f"/api/v1/projects/{pid}/settings", json={"override_labels_on_import": True})
    replaced = await admin.client.post(url, params={"format": "json"}, json=extra)
    assert replaced.json()["mode"] == "replace"
    b = json.loads(await export(admin, pid))["images"][1]
    assert [(s["label"], s["is_default"]) for s in b["labels"]] == [("owl", True)]
    assert [o["id"] for o in b["objects"]] == ["n1"]


async def test_dry_run_reports_without_writing(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], W, H)
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json", "dry_run": "true"},
                                   json={"images": [{"name": "a.png", "labels": ["cat"]}]})
    body = resp.json()
    assert resp.status_code == 200 and body["dry_run"] is True and body["images_with_label_changes"] == 1
    assert body["report"] == [{"row": 1, "image": "a.png", "status": "applied"}]
    assert json.loads(await export(admin, pid))["images"][0]["labels"] == [] and await op_log(app, pid) == []


async def test_one_bad_row_refuses_the_whole_import(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png", "b.png"], W, H)
    rows = [{"name": "a.png", "labels": ["cat"]},
            {"name": "zzz.png", "labels": ["cat"]},
            {"name": "b.png", "objects": [{"id": "x", "type": "bbox", "geometry": {"x": 1, "y": 1, "w": -4, "h": 2}}]},
            {"name": "b.png", "objects": [{"id": "y", "type": "bbox", "geometry": {"x": 60, "y": 1, "w": 40, "h": 2}}]}]
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                                   json={"images": rows})
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "import_refused" and err["details"]["refused"] == 3
    refused = {e["row"]: e for e in err["details"]["report"] if e["status"] == "refused"}
    assert set(refused) == {2, 3, 4} and refused[2]["field"] == "image"
    assert refused[3]["field"].startswith("objects.0.geometry") and "outside" in refused[4]["reason"]
    assert json.loads(await export(admin, pid))["images"][0]["labels"] == [] and await op_log(app, pid) == []
    bad = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, content=b"{nope")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_file"
    fmt = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "xls"}, content=b"")
    assert fmt.status_code == 422


async def test_import_with_sync_adds_classification_labels(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], W, H)
    await admin.client.patch(f"/api/v1/projects/{pid}/settings", json={"synchronize_labels": True})
    objs = [{"id": "o", "type": "bbox", "label": "car", "geometry": {"x": 1, "y": 1, "w": 4, "h": 4}}]
    await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                            json={"images": [{"name": "a.png", "objects": objs}]})
    labels = json.loads(await export(admin, pid))["images"][0]["labels"]
    assert labels == [{"label": "car", "is_default": True, "source": "sync"}]


async def test_export_needs_import_export_privilege_and_honours_filter(
    admin: Api, app: Starlette, users: UserFactory
) -> None:
    pid = await seeded_project(admin, app)
    only_a = json.loads(await export(admin, pid, label="dog"))
    assert [i["name"] for i in only_a["images"]] == ["a.png"]
    labeler = await users("lab")
    await add_member(admin, pid, labeler)
    assert (await labeler.client.get(f"/api/v1/projects/{pid}/export")).status_code == 403


async def test_live_clients_see_imports(admin: Api, app: Starlette, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"], W, H)
    ws = await live_server.connect(admin)
    try:
        await ws.request("hello", project=pid)
        await ws.request("subscribe", image=img)
        assert (await ws.event("snapshot", image=img))["objects"] == []
        box = {"id": "o1", "type": "bbox", "label": "car", "geometry": {"x": 1, "y": 1, "w": 4, "h": 4}}
        resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                                       json={"images": [{"name": "a.png", "labels": ["street"], "objects": [box]}]})
        assert resp.status_code == 200, resp.text
        labels, objects = await ws.event("op", image=img), await ws.event("op", image=img)
    finally:
        await ws.close()
    assert {labels["origin"], objects["origin"]} == {"import"}
    assert labels["op"] == {"kind": "set_labels", "labels": [
        {"label": "street", "is_default": True, "source": "manual", "user_id": admin.user["id"]}]}
    assert objects["op"]["kind"] == "batch" and [o["kind"] for o in objects["op"]["ops"]] == ["create"]
    assert objects["op"]["ops"][0]["object"]["geometry"] == {"x": 1.0, "y": 1.0, "w": 4.0, "h": 4.0}


async def test_export_of_a_selection(admin: Api, app: Starlette) -> None:
    pid = await seeded_project(admin, app)
    ids = [i["id"] for i in (await admin.client.get(f"/api/v1/projects/{pid}/images")).json()["images"]]
    picked = json.loads(await export(admin, pid, ids=f"{ids[2]},{ids[1]}"))
    assert [i["name"] for i in picked["images"]] == ["b.png", "c.png"]
    assert [i["state"] for i in picked["images"]] == ["new", "new"]  # imported labels are no work
    csv_rows = (await export(admin, pid, "csv", ids=str(ids[0]))).decode().splitlines()
    assert csv_rows == ["image,labels,default_label,state", "a.png,cat;dog,dog,new"]


async def test_malformed_files_are_refused_not_crashed(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"], W, H)
    url = f"/api/v1/projects/{pid}/import"

    def zipped(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
        return buf.getvalue()

    cases = [
        ("json", json.dumps({"images": [{"name": "a\x00.png", "labels": ["x"]}]}).encode(), 422),
        ("coco", json.dumps({"images": [], "categories": True}).encode(), 400),
        ("coco", json.dumps({"images": [{"id": [1], "file_name": "a.png"}]}).encode(), 422),
        ("coco", json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "c"}],
                             "annotations": [{"image_id": 1, "category_id": 1,
                                              "segmentation": {"size": [H, W], "counts": [2**70]}}]}).encode(), 422),
        ("masks", zipped({"index.csv": b"nope\n1\n", "a.png/c.png": b"x"}), 400),
        ("masks", zipped({"a.png/c.png": b"not a png"}), 422),
        ("csv", b"image,labels\n\x00,cat\n", 422),
    ]
    for fmt, body, status in cases:
        resp = await admin.client.post(url, params={"format": fmt}, content=body)
        assert resp.status_code == status, (fmt, body[:80], resp.text)
        assert resp.json()["error"]["code"] in ("bad_file", "import_refused")
    assert await op_log(app, pid) == []


async def test_label_definitions_are_validated_like_the_rest_api(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.png"])
    url = f"/api/v1/projects/{pid}/import"
    bad_defs = [{"name": "x" * 100_000}, {"name": "tab\there"}, {"name": "bell\x07"}, {"name": "ok", "color": "red;x"},
                {"name": "ok", "shortcut": 12}, {"name": "  "}]
    for bad in bad_defs:
        body = {"labels": [{"name": "fine"}, bad], "images": [{"name": "a.png", "labels": ["fine"]}]}
        resp = await admin.client.post(url, params={"format": "json"}, json=body)
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"]["message"].startswith("labels.1."), resp.text
        rest = await admin.client.post(f"/api/v1/projects/{pid}/labels", json=bad)
        assert rest.status_code == 422, (bad, rest.text)  # the same rule refuses it there
    assert (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"] == []
    assert await op_log(app, pid) == []
