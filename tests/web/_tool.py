"""Helpers for driving the labeling tool: canvas coordinates, object counts, the export API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.web.conftest import Live


class Canvas:
    """Image pixels -> page pixels for the tool's canvas (the view is fitted with a 16 px margin)."""

    def __init__(self, page: Any, width: int, height: int) -> None:
        box = page.locator("#tool-canvas").bounding_box()
        self.page = page
        self.scale = min((box["width"] - 32) / width, (box["height"] - 32) / height)
        self.x0 = box["x"] + (box["width"] - width * self.scale) / 2
        self.y0 = box["y"] + (box["height"] - height * self.scale) / 2

    def at(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + x * self.scale, self.y0 + y * self.scale

    def click(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.at(x, y))

    def drag(self, points: list[tuple[float, float]], button: str = "left") -> None:
        self.page.mouse.move(*self.at(*points[0]))
        self.page.mouse.down(button=button)
        for p in points[1:]:
            self.page.mouse.move(*self.at(*p), steps=4)
        self.page.mouse.up(button=button)


def objects_of(live: Live, pid: int, image_id: int) -> list[dict[str, Any]]:
    resp = live.api().get(f"/api/v1/projects/{pid}/export", params={"format": "json", "ids": str(image_id)})
    assert resp.status_code == 200, resp.text
    return json.loads(resp.content)["images"][0]["objects"]


def object_count(page: Any, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('#object-list li[data-id]').length === {n}")


_WHY_NOT_SAVED = """() => { const hub = window.labelhub?.hub; return {
  pending: hub?.pending, outbox: (hub?.outbox || []).map((i) => i.msg.op?.kind), state: hub?.state,
  resuming: hub?.resuming, save: document.querySelector('#save-state')?.innerText,
  conn: document.querySelector('#conn')?.dataset.state,
  unsaved: document.querySelector('#unsaved')?.innerText, toasts: [...document.querySelectorAll('.toast')].map((t) => t.innerText) }; }"""


def saved(page: Any) -> None:
    """Every edit sent so far is acknowledged by the server (the hub's outbox is the truth: the
    panel's "All saved" is redrawn a tick later). When that never comes, the failure says what
    the page was waiting for (a rare failure on a loaded CI machine had nothing else to go by)."""
    _or_say_why(page, "not saved", lambda: page.wait_for_function(
        "window.labelhub.hub?.pending === 0 && document.querySelector('#save-state')?.dataset.state === 'saved'"))


def detached(page: Any, selector: str) -> None:
    """``selector`` leaves the page (an edit's or a request's visible effect); when it does not,
    the failure says what the page was waiting for, as :func:`saved` does."""
    _or_say_why(page, f"{selector} stayed", lambda: page.wait_for_selector(selector, state="detached"))


def _or_say_why(page: Any, failure: str, wait: Callable[[], object]) -> None:
    try:
        wait()
    except Exception as exc:  # playwright's TimeoutError
        raise AssertionError(f"{failure}: {page.evaluate(_WHY_NOT_SAVED)}") from exc


def open_tool(page: Any, live: Live, pid: int, image: int | None = None) -> None:
    """Open the tool (on ``image``, or the next one to label) and wait until it shows it. From
    another image of the tool the page is not reloaded: the name of the previous one is shown
    until the new one opens, so an image asked for is awaited by id."""
    page.goto(f"{live.url}/#/p/{pid}/label" + (f"/{image}" if image else ""))
    page.wait_for_selector("#conn[data-state=online]")
    if image is not None:
        page.wait_for_selector(f".tool[data-image='{image}']")
    page.wait_for_function("document.querySelector('.side strong')?.textContent.endsWith('.png')")
