"""A dropped connection resumes without losing an edit made while it was down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._tool import Canvas, object_count, open_tool, saved
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


def test_edit_while_offline_is_sent_after_reconnect(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Flaky network"}).json()["id"]
    with (tmp_path / "a.png").open("wb") as fh:
        fh.write(scene(tmp_path / "src.png", 3).read_bytes())
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", (tmp_path / "a.png").read_bytes())})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]

    page = login(browser, live)
    open_tool(page, live, pid, image)
    canvas = Canvas(page, 320, 240)
    page.keyboard.press("b")
    canvas.drag([(10, 10), (50, 40)])
    saved(page)
    # Drop the socket (as a network blip would) and draw while it is down.
    page.evaluate("window.labelhub.hub.ws.close()")
    page.wait_for_selector("#conn[data-state=reconnecting]")
    canvas.drag([(100, 100), (160, 150)])
    object_count(page, 2)
    page.wait_for_selector("#conn[data-state=online]")
    saved(page)
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    boxes = sorted((o["geometry"]["x"], o["geometry"]["y"]) for o in body["images"][0]["objects"])
    assert boxes == [(10, 10), (100, 100)]
    # Still the editor after the resume: one more edit goes through.
    canvas.drag([(200, 150), (240, 200)])
    saved(page)
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    assert len(body["images"][0]["objects"]) == 3
    assert page.js_errors == []
