"""The labeling tool's editing features in Chromium: vertex editing, groups and holes, boxes over
boxes, keypoints, object properties, rasterize / convert, the smart tool, the brush, the panel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.geometry.rle import rle_decode
from tests.web._images import scene
from tests.web._tool import Canvas, object_count, objects_of, open_tool, saved
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


def area(obj: dict[str, Any]) -> int:
    return int(np.asarray(rle_decode(obj["geometry"]["rle"])).sum())


def by_type(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["type"] == kind]


def pick(page: Any, object_id: str) -> None:
    """Click an object in the object list (which selects it and brings it to front)."""
    page.click(f"#object-list li[data-id='{object_id}']")
    page.wait_for_selector(f"#object-list li[data-id='{object_id}'][aria-selected=true]")


def mode_button(page: Any, cmd: str) -> None:
    """Click a mode's button in the tool bar (every key-only mode has one, its key in the tooltip)."""
    button = page.locator(f".mode-btn[data-cmd={cmd}]")
    assert re.search(r"\([A-Z]\)$", button.get_attribute("title") or "")
    button.click()
    page.wait_for_selector(f".mode-btn[data-cmd={cmd}][aria-pressed=true]")


def setup(live: Live, tmp_path: Path) -> tuple[int, int]:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Tool"}).json()["id"]
    for name in ("car", "tree"):
        assert api.post(f"/api/v1/projects/{pid}/labels", json={"name": name}).status_code == 201
    assert api.patch(f"/api/v1/projects/{pid}/settings", json={"label_shortcuts": {"1": "car", "2": "tree"}}).status_code == 200
    png = scene(tmp_path / "a.png", 5).read_bytes()
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", png)})
    assert resp.status_code == 201, resp.text
    return pid, resp.json()["results"][0]["image"]["id"]


def test_polygon_box_and_properties(browser: Any, live: Live, tmp_path: Path) -> None:
    pid, image = setup(live, tmp_path)
    page = login(browser, live)
    open_tool(page, live, pid, image)
    canvas = Canvas(page, 320, 240)
    # The suggestions panel while the image's features are computed: words, never "null".
    page.wait_for_selector("#suggestions #find-similar")
    assert "null" not in page.inner_text("#suggestions")

    # Polygon: click vertices, N finishes.
    page.keyboard.press("p")
    for p in [(40, 40), (120, 40), (120, 120), (40, 120)]:
        canvas.click(*p)
    page.keyboard.press("n")
    object_count(page, 1)
    # E: drag a vertex, click near an edge to insert one.
    page.click("#object-list li[data-id]")
    mode_button(page, "edit")
    canvas.drag([(120, 40), (130, 35), (140, 30)])
    canvas.click(80, 121)
    saved(page)
    ext = by_type(objects_of(live, pid, image), "polygon")[0]["geometry"]["parts"][0]["exterior"]
    assert [140, 30] in ext and len(ext) == 5 and [80, 120] in [[round(x), round(y)] for x, y in ext]
    # R: remove a point.
    mode_button(page, "remove")
    canvas.click(40, 40)
    saved(page)
    ext = by_type(objects_of(live, pid, image), "polygon")[0]["geometry"]["parts"][0]["exterior"]
    assert len(ext) == 4 and [40, 40] not in ext
    # G: a new polygon in the group; H: a hole in the first part.
    mode_button(page, "group")
    for p in [(200, 40), (260, 40), (230, 90)]:
        canvas.click(*p)
    page.keyboard.press("Enter")
    mode_button(page, "hole")
    for p in [(90, 95), (110, 95), (100, 110)]:
        canvas.click(*p)
    page.keyboard.press("Enter")
    saved(page)
    parts = by_type(objects_of(live, pid, image), "polygon")[0]["geometry"]["parts"]
    assert len(parts) == 2 and len(parts[0]["holes"]) == 1 and len(parts[1]["exterior"]) == 3
    object_count(page, 1)

    # Boxes: the number key picks the label, drag an edge to resize; with the box tool a drag
    # that starts inside a box draws a new box (moving is the select tool's job).
    page.keyboard.press("b")
    page.keyboard.press("1")
    canvas.drag([(20, 150), (60, 190), (100, 220)])
    object_count(page, 2)
    canvas.drag([(100, 185), (115, 185), (130, 185)])
    # A number key right after drawing chooses the next object's label, not the drawn one's.
    assert page.inner_text("#number-rule") == "1\u20139: next label"
    page.keyboard.press("2")
    canvas.drag([(40, 170), (55, 185), (70, 200)])
    object_count(page, 3)
    page.keyboard.press("1")
    page.wait_for_selector("#new-label:has-text('New: car')")
    saved(page)
    boxes = {b["label"]: b for b in by_type(objects_of(live, pid, image), "bbox")}
    assert boxes["car"]["geometry"] == {"x": 20, "y": 150, "w": 110, "h": 70}
    assert boxes["tree"]["geometry"] == {"x": 40, "y": 170, "w": 30, "h": 30}
    car, tree = boxes["car"]["id"], boxes["tree"]["id"]
    # Clicking the covered box in the object list brings it to front: a drag with the select
    # tool now moves it.
    pick(page, car)
    page.keyboard.press("v")
    canvas.drag([(55, 185), (60, 190), (65, 195)])
    saved(page)
    got = {o["id"]: o for o in objects_of(live, pid, image)}
    assert got[car]["geometry"] == {"x": 30, "y": 160, "w": 110, "h": 70}
    assert got[tree]["geometry"] == {"x": 40, "y": 170, "w": 30, "h": 30}

    # Keypoints on the box and on the polygon; occluded, attributes and RPY from the panel.
    page.keyboard.press("k")
    canvas.click(100, 180)
    canvas.click(120, 200)
    polygon = by_type(list(got.values()), "polygon")[0]["id"]
    pick(page, polygon)
    canvas.click(60, 100)
    pick(page, car)
    page.check("#props input[type=checkbox]")
    page.fill("#props textarea", "color=red\nscore=3")
    page.fill("#props input[aria-label=roll]", "10")
    page.keyboard.press("Tab")
    # The panel is drawn anew when an edit's answer comes: click once it is quiet (a redraw
    # between mouse down and up would swallow the click).
    saved(page)
    page.click("text=Add RPY")
    object_count(page, 4)
    saved(page)
    got = {o["id"]: o for o in objects_of(live, pid, image)}
    assert [k["name"] for k in got[car]["keypoints"]] == ["kp1", "kp2"]
    assert got[car]["keypoints"][0]["x"] == pytest.approx(100, abs=0.5)
    assert [k["name"] for k in got[polygon]["keypoints"]] == ["kp1"]
    assert got[car]["occluded"] is True
    assert got[car]["attributes"] == {"color": "red", "score": 3}
    assert got[car]["rpy"] == {"roll": 10, "pitch": 0, "yaw": 0}
    assert len(by_type(list(got.values()), "rpy")) == 1

    # Rasterize one box, convert it back to a polygon, then rasterize all; undo / redo that.
    page.keyboard.press("v")
    page.click(f"#object-list li[data-id='{tree}']")
    page.click("#props >> text=Rasterize")
    page.wait_for_selector(f"#object-list li[data-id='{tree}'][data-type=bitmap]")
    page.click("#props >> text=Convert to polygon")
    page.wait_for_selector(f"#object-list li[data-id='{tree}'][data-type=polygon]")
    page.click("text=Rasterize all")
    page.wait_for_function("[...document.querySelectorAll('#object-list li[data-id]')].filter((li) => li.dataset.type === 'bitmap').length === 3")
    saved(page)
    types = sorted(o["type"] for o in objects_of(live, pid, image))
    assert types == ["bitmap", "bitmap", "bitmap", "rpy"]
    page.keyboard.press("Control+z")
    page.wait_for_selector("#object-list li[data-type=bbox]")
    page.keyboard.press("Control+Shift+z")
    page.wait_for_selector("#object-list li[data-type=bbox]", state="detached")

    # Classification: Enter applies a label, a click makes an applied one the default.
    page.focus("#class-list li[data-name=car]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#class-list li[data-name=car][aria-selected=true]")
    page.focus("#class-list li[data-name=tree]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#class-list li[data-name=tree][aria-selected=true]")
    assert page.locator("#class-list li[data-name=car] .badge.ok").count() == 1  # the first stays the default
    page.click("#class-list li[data-name=tree]")
    page.wait_for_selector("#class-list li[data-name=tree] .badge.ok")
    saved(page)
    labels = live.api().get(f"/api/v1/images/{image}").json()["labels"]
    assert {(lab["name"], lab["is_default"]) for lab in labels} == {("car", False), ("tree", True)}
    assert page.js_errors == []


def test_smart_tool_brush_and_view(browser: Any, live: Live, tmp_path: Path) -> None:
    pid, image = setup(live, tmp_path)
    api = live.api()
    assert api.patch(f"/api/v1/projects/{pid}/settings", json={"use_previous_label_name": True}).status_code == 200
    page = login(browser, live)
    open_tool(page, live, pid, image)
    canvas = Canvas(page, 320, 240)
    # The image's default classification label names the first new object ("use previous label name").
    page.focus("#class-list li[data-name=tree]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#class-list li[data-name=tree] .badge.ok")

    # Smart tool: a rectangle, a foreground stroke on the white disc (r=30 at 160,120), a background
    # stroke (its button; the right mouse button does the same), an erase stroke; Enter makes the
    # bitmap.
    page.keyboard.press("w")
    canvas.drag([(118, 78), (160, 120), (202, 162)])
    canvas.drag([(150, 118), (160, 121), (170, 122)])
    page.wait_for_selector("#smart-accept")
    page.wait_for_selector("#smart-busy", state="detached")
    mode_button(page, "group")
    canvas.drag([(122, 82), (160, 82), (198, 84)])
    page.wait_for_selector("#smart-busy", state="detached")
    mode_button(page, "remove")
    canvas.drag([(160, 85), (160, 100), (160, 150)])
    page.keyboard.press("Enter")
    object_count(page, 1)
    saved(page)
    (smart,) = objects_of(live, pid, image)
    assert smart["type"] == "bitmap" and smart["label"] == "tree"
    disc = area(smart)
    assert 1500 < disc < 2900, disc  # the disc is ~2,830 px; the erase stroke took a strip out

    # Brush: the selected bitmap grows with a stroke, shrinks with R, and G fills a closed outline.
    page.keyboard.press("m")
    page.click(f"#object-list li[data-id='{smart['id']}']")
    canvas.drag([(20, 20), (40, 20), (60, 20)])
    saved(page)
    grown = area(objects_of(live, pid, image)[0])
    assert grown > disc
    mode_button(page, "remove")
    canvas.drag([(10, 20), (40, 20), (70, 20)])
    saved(page)
    assert area(objects_of(live, pid, image)[0]) < grown
    mode_button(page, "edit")  # Draw again (E)
    mode_button(page, "new")  # the next stroke starts a new bitmap (N)
    page.keyboard.press("[")
    assert page.input_value("input[aria-label='Brush size']") == "6"
    canvas.drag([(230, 150), (290, 150), (290, 210), (230, 210), (230, 150)])
    object_count(page, 2)
    mode_button(page, "group")
    canvas.click(260, 180)
    saved(page)
    ring = next(o for o in objects_of(live, pid, image) if o["id"] != smart["id"])
    assert ring["label"] == "tree"  # the previous object's label
    assert area(ring) > 60 * 60, page.inner_text("#toasts")

    # View: the wheel zooms at the pointer, F fits, the ruler measures without making an object.
    page.mouse.move(*canvas.at(160, 120))
    fitted = page.inner_text(".hud")
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"!document.querySelector('.hud').textContent.startsWith({fitted.split('%')[0]!r} + '%')")
    # Space+drag pans: the image point under the same screen point moves.
    px, py = canvas.at(160, 120)
    page.mouse.move(px + 1, py)
    page.mouse.move(px, py)
    under = hud_point(page)
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(px + 120, py, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    page.mouse.move(px, py)
    panned = hud_point(page)
    assert panned[0] < under[0] - 10 and abs(panned[1] - under[1]) <= 1, (under, panned)
    object_count(page, 2)  # panning drew nothing
    page.keyboard.press("f")
    page.wait_for_function(f"document.querySelector('.hud').textContent.startsWith({fitted.split('%')[0]!r} + '%')")
    page.keyboard.press("t")
    canvas.drag([(20, 200), (100, 200)])
    object_count(page, 2)

    # View adjustments change only what is shown: brightness, invert (I), sharp pixels when zoomed.
    before = pixel(page, canvas, 160, 120)  # the white disc
    page.click("text=View (not saved)")
    page.locator("input[aria-label=Brightness]").fill("50")
    page.wait_for_function(f"({PIXEL})({canvas.at(160, 120)[0]}, {canvas.at(160, 120)[1]})[0] < {before[0] - 60}")
    page.click("text=Reset")
    page.keyboard.press("i")
    page.wait_for_function(f"({PIXEL})({canvas.at(160, 120)[0]}, {canvas.at(160, 120)[1]})[0] < 40")
    page.wait_for_selector("label:has-text('Invert') input:checked")  # the panel follows the key
    page.keyboard.press("i")
    page.mouse.move(*canvas.at(130, 120))  # the disc's left edge
    for _ in range(4):
        page.mouse.wheel(0, -600)
    page.check("label:has-text('Sharp pixels') input")
    x, y = canvas.at(130, 120)
    page.wait_for_function(f"({LEVELS})({x}, {y}) <= 10")  # pixel blocks: a few flat colors
    page.uncheck("label:has-text('Sharp pixels') input")
    page.wait_for_function(f"({LEVELS})({x}, {y}) > 20")  # smoothed: a gradient across each edge
    saved(page)
    assert len(objects_of(live, pid, image)) == 2  # none of it was an edit

    # A fixed aspect ratio from the settings shapes new boxes.
    assert api.patch(f"/api/v1/projects/{pid}/settings", json={"fixed_bbox_aspect_ratio": 2}).status_code == 200
    page.reload()
    page.wait_for_selector("#conn[data-state=online]")
    object_count(page, 2)
    canvas = Canvas(page, 320, 240)
    page.keyboard.press("b")
    canvas.drag([(20, 150), (50, 160), (80, 170)])
    object_count(page, 3)
    saved(page)
    (box,) = by_type(objects_of(live, pid, image), "bbox")
    assert box["geometry"] == {"x": 20, "y": 150, "w": 60, "h": 30}
    assert page.js_errors == []


# The canvas pixel [r, g, b] under a page point, and the number of distinct colors on a
# 60-pixel horizontal line through it (few when zoomed pixels are drawn sharp).
PIXEL = """(x, y) => { const c = document.querySelector('#tool-canvas'), r = c.getBoundingClientRect(), k = c.width / r.width;
  return Array.from(c.getContext('2d').getImageData(Math.round((x - r.left) * k), Math.round((y - r.top) * k), 1, 1).data.slice(0, 3)); }"""
LEVELS = """(x, y) => { const c = document.querySelector('#tool-canvas'), r = c.getBoundingClientRect(), k = c.width / r.width;
  const d = c.getContext('2d').getImageData(Math.round((x - r.left) * k) - 30, Math.round((y - r.top) * k), 60, 1).data;
  const seen = new Set(); for (let i = 0; i < d.length; i += 4) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]); return seen.size; }"""


def hud_point(page: Any) -> tuple[int, int]:
    """The image point under the pointer, as the zoom display says it: "306%  x 160, y 119"."""
    text = page.inner_text(".hud")
    x, y = text.split("x ")[1].split(", y ")
    return int(x), int(y)


def pixel(page: Any, canvas: Canvas, x: float, y: float) -> list[int]:
    return list(page.evaluate(f"({PIXEL})({canvas.at(x, y)[0]}, {canvas.at(x, y)[1]})"))


ATTRS = {"note": "hello", "n": 3, "f": 2.5, "flag": True, "multi": "two\nlines", "digits": "42",
         "word": "true", "pad": " x ", "eq": "a=b", "empty": ""}


def test_the_attribute_box_shows_and_keeps_every_attribute(browser: Any, live: Live, tmp_path: Path) -> None:
    pid, image = setup(live, tmp_path)
    box = {"id": "b1", "type": "bbox", "label": "car", "geometry": {"x": 10, "y": 10, "w": 50, "h": 40},
           "attributes": ATTRS}
    resp = live.api().post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                           json={"images": [{"name": "a.png", "objects": [box]}]})
    assert resp.status_code == 200, resp.text
    page = login(browser, live)
    open_tool(page, live, pid, image)
    object_count(page, 1)
    pick(page, "b1")
    shown = page.input_value("#props textarea")
    assert "note=hello" in shown and "n=3" in shown and len(shown.splitlines()) == len(ATTRS)
    # Add one line and leave the box: every other attribute is kept, with its type.
    page.fill("#props textarea", shown + "\nextra=new")
    page.keyboard.press("Tab")
    saved(page)
    assert objects_of(live, pid, image)[0]["attributes"] == {**ATTRS, "extra": "new"}
    # Change one, delete another: exactly those change.
    pick(page, "b1")
    lines = [ln for ln in page.input_value("#props textarea").splitlines() if not ln.startswith("flag=")]
    page.fill("#props textarea", "\n".join("n=4" if ln == "n=3" else ln for ln in lines))
    page.keyboard.press("Tab")
    saved(page)
    want = {k: v for k, v in ATTRS.items() if k != "flag"}
    assert objects_of(live, pid, image)[0]["attributes"] == {**want, "n": 4, "extra": "new"}
    assert page.js_errors == []
