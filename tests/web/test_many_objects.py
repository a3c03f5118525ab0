"""The labeling tool with thousands of objects: all drawn, only what is in view drawn after a
zoom, selectable on the canvas and in the list, and the object list holds only a window of rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._tool import Canvas, open_tool
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
