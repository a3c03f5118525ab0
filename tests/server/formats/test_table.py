"""CSV export and import of classification labels."""

from __future__ import annotations

import csv
import io
import json

from starlette.applications import Starlette

from server.formats.table import escape, guard_cell, split_labels, unguard_cell
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
    assert out == ("image,labels,default_label,state\na.jpg,cat;dog,dog,new\nb.jpg,cat;owl,cat,new\n"
                   "c.jpg,,,new\n")
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


FORMULAS = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "'=quoted", "''+two"]


async def test_csv_cells_never_start_a_formula_and_round_trip(admin: Api, app: Starlette) -> None:
    pid = await make_project(admin)
    names = [f"{f}.jpg" for f in FORMULAS]
    await make_images(app, pid, names)
    rows = [[guard_cell(n), guard_cell(escape(f)), ""] for n, f in zip(names, FORMULAS, strict=True)]
    body = io.StringIO()
    csv.writer(body, lineterminator="\n").writerows([["image", "labels", "default_label"], *rows])
    resp = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "csv"},
                                   content=body.getvalue())
    assert resp.status_code == 200, resp.text
    out = (await export(admin, pid, "csv")).decode()
    cells = [c for row in csv.reader(io.StringIO(out)) for c in row if c]
    # A spreadsheet evaluates a cell starting with = + - @ (tab and CR too): each gets a quote.
    assert not [c for c in cells if c[0] in "=+-@"]
    assert "'=HYPERLINK(\"http://x\").jpg" in cells and "''=quoted.jpg" in cells
    again = await make_project(admin, "Again")
    await make_images(app, again, names)
    back = await admin.client.post(f"/api/v1/projects/{again}/import", params={"format": "csv"}, content=out)
    assert back.status_code == 200, back.text
    assert (await export(admin, again, "csv")).decode() == out
    labels = {i["name"]: [s["label"] for s in i["labels"]] for i in json.loads(await export(admin, again))["images"]}
    assert labels == {n: [f] for n, f in zip(names, FORMULAS, strict=True)}


def test_unguard_undoes_exactly_one_quote() -> None:
    assert [guard_cell(c) for c in ("\tx", "\rx", "'\tx", "a=b")] == ["'\tx", "'\rx", "''\tx", "a=b"]
    assert [unguard_cell(c) for c in ("'=a", "''=a", "'a", "=a", "")] == ["=a", "'=a", "'a", "=a", ""]
