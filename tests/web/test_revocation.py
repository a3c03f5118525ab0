"""A tab whose session was revoked elsewhere stops saving and returns to the login page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._tool import Canvas, open_tool, saved
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


def test_a_tab_whose_user_logged_out_in_another_tab_stops_saving(
        browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Two tabs"}).json()["id"]
    png = scene(tmp_path / "src.png", 3).read_bytes()
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", png)})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]

    ana = {"email": "ana@example.com", "password": "password-123"}
    assert api.post("/api/v1/users", json={**ana, "name": "Ana"}).status_code == 201
    member = {"email": ana["email"], "role": "labeler"}
    assert api.post(f"/api/v1/projects/{pid}/members", json=member).status_code == 201

    page = login(browser, live, ana["email"], ana["password"])
    open_tool(page, live, pid, image)
    canvas = Canvas(page, 320, 240)
    page.keyboard.press("b")
    canvas.drag([(10, 10), (50, 40)])
    saved(page)

    other = page.context.new_page()  # a second tab of the same browser (same session)
    other.goto(live.url + "/#/")
    other.wait_for_selector(".project-list")
    other.click("#logout")
    other.wait_for_selector("#login-email")

    # The labeling tab hears of it at once (no request of its own needed) and leaves the tool.
    page.wait_for_selector("#login-email")
    assert page.evaluate("window.labelhub.hub") is None
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    assert len(body["images"][0]["objects"]) == 1
    assert page.js_errors == []
