"""CSV export and import of classification labels."""

from __future__ import annotations

import json

from starlette.applications import Starlette

from server.formats.table import escape, split_labels
from tests.conftest import Api, make_project
from tests.server._rows import make_images
from tests.server.formats.test_native import export


def test_label_lists_escape_separators() -> None:
    names = ["a;b", "c\\d", "plain"]
    assert split_labels(";".join(escape(n) for n in names)) == names


async def test_csv_round_trip_and_default(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.jpg", "b.jpg", "c.jpg"])
    body = "image,labels,default_label\na.jpg,cat;dog,dog\nb.jpg,cat,\nb.jpg,owl,\n"
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "csv"}, content=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["images_with_label_changes"] == 2
    out = (await export(admin, pid, "csv")).decode()
    assert out == "image,labels,default_label\na.jpg,cat;dog,dog\nb.jpg,cat;owl,cat\nc.jpg,,\n"
    images = json.loads(await export(admin, pid))["images"]
    assert images[0]["labels"][1] == {"label": "dog", "is_default": True, "source": "manual"}


async def test_csv_errors_are_reported_per_row(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    await make_images(app, pid, ["a.jpg"])
    url = f"/api/v1/projects/{pid}/import"
    body = "image,labels,default_label\na.jpg,cat,dog\nmissing.jpg,cat,\n"
    resp = await admin.client.post(url, params={"format": "csv"}, content=body)
    report = resp.json()["error"]["details"]["report"]
    assert [(e["row"], e["field"]) for e in report if e["status"] == "refused"] == [(2, "default_label"), (3, "image")]
    no_header = await admin.client.post(url, params={"format": "csv"}, content="a,b\n")
    assert no_header.status_code == 400
