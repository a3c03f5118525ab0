"""The issue's end-to-end scenario in Chromium, against a live server with the real hub.

Set LABELHUB_SCREENSHOTS=docs/screenshots to also save the dashboard, tool and supervisor
screenshots used by the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._shots import shot
from tests.web._tool import Canvas, object_count, objects_of, open_tool, saved
from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


def test_live_labeling_scenario(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    bob_email, bob_password, bob_id = make_user(api, "bob")
    pid = api.post("/api/v1/projects", json={"name": "Street scenes"}).json()["id"]
    admin_id = api.get("/api/v1/me").json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": bob_email, "role": "labeler"}).status_code == 201

    # Upload two images with labels through the dashboard.
    admin = login(browser, live)
    admin.goto(f"{live.url}/#/p/{pid}")
    admin.click("#upload-btn")
    admin.set_input_files("#upload-files", [str(scene(tmp_path / "a.png", 1)), str(scene(tmp_path / "b.png", 2))])
    admin.fill("#upload-labels", "street")
    admin.click("dialog button[type=submit]")
    admin.wait_for_selector("dialog p:has-text('Done: 2 uploaded')")
    admin.click("dialog [aria-label=Close]")
    admin.wait_for_selector(".tile >> nth=1")
    shot(admin, "dashboard.png")
    first, second = (i["id"] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"])

    # Draw a box, a polygon with a hole, a polyline, a point and a brush mask; save.
    open_tool(admin, live, pid, first)
    canvas = Canvas(admin, 320, 240)
    admin.keyboard.press("b")
    canvas.drag([(20, 20), (60, 50), (80, 70)])
    object_count(admin, 1)
    admin.keyboard.press("p")
    for p in [(120, 20), (220, 20), (220, 120), (120, 120)]:
        canvas.click(*p)
    admin.keyboard.press("Enter")
    object_count(admin, 2)
    admin.keyboard.press("h")
    for p in [(150, 50), (190, 50), (170, 90)]:
        canvas.click(*p)
    admin.keyboard.press("Enter")
    admin.keyboard.press("l")
    for p in [(20, 200), (80, 160), (140, 210)]:
        canvas.click(*p)
    admin.keyboard.press("Enter")
    admin.keyboard.press("o")
    canvas.click(250, 200)
    admin.keyboard.press("m")
    canvas.drag([(260, 40), (280, 60), (300, 80)])
    object_count(admin, 5)
    admin.keyboard.press("s")
    saved(admin)
    admin.reload()
    admin.wait_for_selector("#conn[data-state=online]")
    object_count(admin, 5)
    objs = {o["type"]: o for o in objects_of(live, pid, first)}
    assert sorted(objs) == ["bbox", "bitmap", "point", "polygon", "polyline"]
    assert objs["bbox"]["geometry"] == pytest.approx({"x": 20, "y": 20, "w": 60, "h": 50}, abs=1)
    part = objs["polygon"]["geometry"]["parts"][0]
    assert len(part["exterior"]) == 4 and len(part["holes"]) == 1
    assert len(objs["polyline"]["geometry"]["points"]) == 3
    assert objs["point"]["geometry"] == pytest.approx({"x": 250, "y": 200}, abs=1)
    assert objs["bitmap"]["geometry"]["rle"]["size"] == [240, 320]
    shot(admin, "tool.png")
    # No panel prints an absent part as the text "null" (DOM replaceChildren does, h() does not).
    assert not admin.evaluate("""[...document.querySelectorAll('body *')].some((e) =>
        [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() === 'null'))""")

    # Bob opens the tool without a selection: the image the admin holds is skipped.
    bob = login(browser, live, bob_email, bob_password)
    open_tool(bob, live, pid)
    assert bob.inner_text(".side strong") == "b.png"
    # Bob watches the admin's image: read-only, says who holds it, sees a new box appear live.
    open_tool(bob, live, pid, first)
    bob.wait_for_selector(".banner:has-text('Admin is labeling this image')")
    object_count(bob, 5)
    admin.keyboard.press("b")
    canvas.drag([(30, 150), (70, 190)])
    object_count(admin, 6)
    object_count(bob, 6)
    # Undo goes through the server: the box disappears in both.
    admin.keyboard.press("Control+z")
    object_count(admin, 5)
    object_count(bob, 5)

    # Bob back on his own image, then a manager makes him a viewer: his tool turns read-only.
    open_tool(bob, live, pid, second)
    assert bob.locator(".banner").is_hidden()
    assert api.patch(f"/api/v1/projects/{pid}/members/{bob_id}", json={"role": "viewer"}).status_code == 200
    bob.wait_for_selector(".banner:has-text('Read-only')")

    # The supervisor view's counts follow edits live.
    sup = login(browser, live)
    sup.goto(f"{live.url}/#/p/{pid}/supervisor")
    cell = f"#time-table tr[data-user='{admin_id}'] td.created"
    sup.wait_for_selector(cell)
    before = int(sup.inner_text(cell))
    admin.keyboard.press("b")
    canvas.drag([(100, 150), (140, 200)])
    sup.wait_for_function(f"Number(document.querySelector(\"{cell}\").textContent) === {before + 1}")
    assert sup.inner_text(".kpi[data-k=labeled] b") == "2"
    assert sup.locator("svg.chart").count() == 3  # time per day, images per user, objects per hour
    assert "a.png" in sup.inner_text("#holders tr:has-text('Admin')")
    shot(sup, "supervisor.png")
    # The time table downloads as CSV.
    with sup.expect_download() as info:
        sup.click("#csv-btn")
    rows = Path(info.value.path()).read_text().splitlines()
    assert rows[0].startswith("day,user,active_seconds,images_labeled,objects_created")
    admin_rows = [r.split(",") for r in rows[1:] if r.split(",")[1] == "Admin"]
    assert admin_rows and int(admin_rows[0][4]) == before + 1

    # A reviewer takes the image over: the admin's tool turns read-only and says who has it.
    rita_email, rita_password, _ = make_user(api, "rita")
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": rita_email, "role": "manager"}).status_code == 201
    rita = login(browser, live, rita_email, rita_password)
    open_tool(rita, live, pid, first)
    rita.wait_for_selector(".banner:has-text('Admin is labeling this image')")
    rita.click("#take-over")
    rita.wait_for_selector(".banner", state="hidden")
    admin.wait_for_selector(".banner:has-text('Rita is labeling this image')")
    assert api.get(f"/api/v1/images/{first}").json()["lock"]["holder"]["name"] == "Rita"
    Canvas(rita, 320, 240).drag([(200, 150), (240, 190)])
    object_count(rita, 7)
    object_count(admin, 7)
    assert admin.locator("#save-btn").is_disabled()
    assert admin.js_errors == [] and bob.js_errors == [] and rita.js_errors == []
