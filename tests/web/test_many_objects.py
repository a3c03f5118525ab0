"""The labeling tool with thousands of objects: all drawn, only what is in view drawn after a
zoom, selectable on the canvas and in the list, and the object list holds only a window of rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._tool import Canvas, objects_of, open_tool
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser

W, H = 1200, 900
COLS, ROWS = 60, 50  # 3,000 boxes on a grid, 20 x 18 px apart
N = COLS * ROWS


def grid_box(i: int) -> dict[str, Any]:
    x, y = (i % COLS) * 20 + 2, (i // COLS) * 18 + 2
    return {"id": f"g{i}", "type": "bbox", "label": "car" if i % 2 else "tree",
            "geometry": {"x": x, "y": y, "w": 14, "h": 12}}


def drawn(page: Any) -> int:
    return int(page.get_attribute("#tool-canvas", "data-drawn") or 0)


def list_rows(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#object-list li[data-id]", "(els) => els.map((e) => e.dataset.id)"))


def test_thousands_of_boxes_are_drawn_culled_selectable_and_listed_virtually(
    browser: Any, live: Live, tmp_path: Path
) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Many"}).json()["id"]
    for name in ("car", "tree"):
        assert api.post(f"/api/v1/projects/{pid}/labels", json={"name": name}).status_code == 201
    png = scene(tmp_path / "many.png", 3, (W, H)).read_bytes()
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("many.png", png)})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]
    resp = api.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                    json={"images": [{"name": "many.png", "objects": [grid_box(i) for i in range(N)]}]})
    assert resp.status_code == 200, resp.text

    page = login(browser, live)
    open_tool(page, live, pid, image)
    # Fitted: every box is on screen and drawn.
    page.wait_for_function(f"document.querySelector('#tool-canvas').dataset.drawn === '{N}'")
    assert page.text_content(".side h3:has-text('Objects')") == f"Objects ({N})"
    # The list is virtual: a window of rows, the first ones, and it knows the full count.
    rows = list_rows(page)
    assert 0 < len(rows) <= 40
    assert page.get_attribute("#object-list li[data-id]", "aria-posinset") == "1"
    assert page.get_attribute("#object-list li[data-id]", "aria-setsize") == str(N)

    # A click on a box on the canvas selects it, and the list scrolls to its row.
    canvas = Canvas(page, W, H)
    target = 1234
    g = grid_box(target)["geometry"]
    canvas.click(g["x"] + 7, g["y"] + 6)
    page.wait_for_selector(f"#object-list li[data-id='g{target}'][aria-selected=true]")
    assert len(list_rows(page)) <= 40

    # Scroll the list to its end: the last rows appear, still only a window of them; pick the last.
    page.eval_on_selector("#object-list", "(el) => { el.scrollTop = el.scrollHeight; }")
    last = f"#object-list li[aria-posinset='{N}']"
    page.wait_for_selector(last)
    assert len(list_rows(page)) <= 40
    last_id = page.get_attribute(last, "data-id")
    page.click(last)
    page.wait_for_selector(f"#object-list li[data-id='{last_id}'][aria-selected=true]")

    # Zoom in round a box in the middle (the point under the pointer stays put): only the boxes
    # in view are drawn, and the one under the pointer is still picked by a click.
    middle = 25 * COLS + 30
    g = grid_box(middle)["geometry"]
    page.mouse.move(*canvas.at(g["x"] + 7, g["y"] + 6))
    for _ in range(6):
        page.mouse.wheel(0, -300)
    page.wait_for_function(f"Number(document.querySelector('#tool-canvas').dataset.drawn) < {N // 4}")
    assert drawn(page) > 0
    page.mouse.click(*canvas.at(g["x"] + 7, g["y"] + 6))
    page.wait_for_selector(f"#object-list li[data-id='g{middle}'][aria-selected=true]")
    assert page.js_errors == []


def inside_viewport(page: Any, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["x"] >= 0 and \
        box["y"] + box["height"] <= size["height"] and box["x"] + box["width"] <= size["width"]


def selected_none(page: Any) -> None:
    page.wait_for_function("!document.querySelector('#object-list li[aria-selected=true]')"
                           " && document.querySelector('#tool-hint').textContent.startsWith('Click an object')")


def test_a_thousand_objects_filtered_searched_hidden_locked_and_named(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Thousand"}).json()["id"]
    for name in ("car", "tree", "sign"):
        assert api.post(f"/api/v1/projects/{pid}/labels", json={"name": name}).status_code == 201
    png = scene(tmp_path / "k.png", 4, (W, H)).read_bytes()
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("k.png", png)})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]
    objects = [grid_box(i) for i in range(1000)]
    for o in objects[7::100]:
        o["label"] = "sign"
    objects[500]["attributes"] = {"plate": "XYZ-42"}
    resp = api.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                    json={"images": [{"name": "k.png", "objects": objects}]})
    assert resp.status_code == 200, resp.text

    page = login(browser, live)
    open_tool(page, live, pid, image)
    page.wait_for_function("document.querySelector('#tool-canvas').dataset.drawn === '1000'")
    # Only the list scrolls: Save, Next, the label picker and the search stay in the window.
    controls = ["#save-btn", "#next-btn", "#current-label", "#object-search", "#object-filter", ".side-rest > h3:first-child"]
    assert all(inside_viewport(page, s) for s in controls)
    assert page.eval_on_selector(".side", "(el) => el.scrollHeight <= el.clientHeight + 1")
    assert page.eval_on_selector("#object-list", "(el) => el.scrollHeight > 10 * el.clientHeight")
    page.eval_on_selector("#object-list", "(el) => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_selector("#object-list li[aria-posinset='1000']")
    assert all(inside_viewport(page, s) for s in controls)

    # Filter by label, then search (label, id, type, attribute text): the list narrows.
    page.select_option("#object-filter", "sign")
    page.wait_for_selector("#objects-title:text-is('Objects (10 of 1000)')")
    assert sorted(list_rows(page)) == sorted(f"g{i}" for i in range(7, 1000, 100))
    page.fill("#object-search", "g7")
    page.wait_for_selector("#objects-title:text-is('Objects (2 of 1000)')")
    assert sorted(list_rows(page)) == ["g7", "g707"]
    page.select_option("#object-filter", "")
    page.fill("#object-search", "xyz-42")
    page.wait_for_selector("#objects-title:text-is('Objects (1 of 1000)')")
    assert list_rows(page) == ["g500"]

    # Hide g500 from its row: not drawn, and a click on it selects nothing.
    page.click("#object-list li[data-id=g500] [data-toggle=hide]")
    page.wait_for_function("document.querySelector('#tool-canvas').dataset.drawn === '999'")
    assert page.get_attribute("#object-list li[data-id=g500] [data-toggle=hide]", "aria-pressed") == "true"
    page.press("#object-search", "Escape")  # clears the search
    page.wait_for_selector("#objects-title:text-is('Objects (1000)')")
    page.click(".toolbtn[data-tool=select]")
    canvas = Canvas(page, W, H)
    center = {i: (grid_box(i)["geometry"]["x"] + 7, grid_box(i)["geometry"]["y"] + 6) for i in (500, 501, 502)}
    canvas.click(*center[502])
    page.wait_for_selector("#object-list li[data-id=g502][aria-selected=true]")
    canvas.click(*center[500])
    selected_none(page)

    # Lock g501: still drawn and listed, a click on it selects nothing; picked in the list, its
    # properties are read-only with a hint and an edit is refused with one.
    page.fill("#object-search", "g50")
    page.click("#object-list li[data-id=g501] [data-toggle=lock]")
    page.wait_for_selector("#unlock-all:text-is('Unlock all (1)')")
    canvas.click(*center[502])
    page.wait_for_selector("#object-list li[data-id=g502][aria-selected=true]")
    canvas.click(*center[501])
    selected_none(page)
    assert page.get_attribute("#tool-canvas", "data-drawn") == "999"
    page.click("#object-list li[data-id=g501]")
    page.wait_for_selector("#locked-hint")
    assert page.is_disabled("#props textarea")
    page.select_option("#current-label", "sign")
    page.wait_for_selector(".toast:has-text('This object is locked')")
    assert page.input_value("#current-label") == "car"

    # Label names (key C): too many in view when fitted; zoomed in, the names are written.
    page.focus("#tool-canvas")
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('#tool-canvas').dataset.names === '-1'"
                           " && document.querySelector('#show-names').checked")
    page.mouse.move(*canvas.at(*center[502]))
    for _ in range(6):
        page.mouse.wheel(0, -300)
    page.wait_for_function("Number(document.querySelector('#tool-canvas').dataset.names) > 0")

    # The view state is this viewer's, per image, kept over a reload; "Show all" undoes hiding.
    page.reload()
    page.wait_for_selector("#unlock-all:text-is('Unlock all (1)')")
    page.click("#show-all")
    page.wait_for_function("document.querySelector('#tool-canvas').dataset.drawn === '1000'")
    assert objects_of(live, pid, image)[501]["label"] == "car"
    assert page.js_errors == []
