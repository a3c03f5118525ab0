"""A new user's first labeling after `make run`: the demo project, mouse only, guided by what the
page says (visible names and hints, no shortcuts, no ids)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from playwright.sync_api import expect

from server.demo import seed_with_settings
from server.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.web.conftest import ARGS, CHROMIUM, Live

pytestmark = pytest.mark.browser


def seed(settings: Settings) -> int:
    result: list[int | None] = []
    # Playwright's sync API owns this thread's event loop: seed from another thread.
    worker = threading.Thread(target=lambda: result.append(asyncio.run(seed_with_settings(settings))))
    worker.start()
    worker.join()
    assert result and result[0] is not None
    return result[0]


def test_new_user_labels_a_demo_image(browser: Any, live: Live, settings: Settings) -> None:
    assert CHROMIUM and ARGS  # the session browser is Debian's chromium (conftest)
    pid = seed(settings)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    live.closers.append(context.close)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # This context keeps the server's Content-Security-Policy (conftest's login() bypasses it):
    # anything the app does that the policy blocks is reported on the console.
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)

    page.goto(live.url)  # the address `make run` prints
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert").first).to_have_text("That email and password do not match an account.")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # Keyboard focus is always visible.
    page.get_by_role("link", name="Demo project").wait_for()
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle + ' ' + getComputedStyle(document.activeElement).outlineWidth")
    assert not outline.startswith("none") and not outline.endswith(" 0px"), outline
    page.get_by_role("link", name="Demo project").click()
    page.get_by_role("button", name="Label images").click()
    page.wait_for_selector("#conn[data-state=online]")
    hint = page.locator("#tool-hint")
    expect(hint).to_contain_text("Drag to draw a box")
    # The tool says which label new objects get (the image's default one here); pick another.
    expect(page.locator("#new-label")).to_have_text("New: circle")
    page.get_by_label("Label for new and selected objects").select_option(label="2 · square")
    expect(page.locator("#new-label")).to_have_text("New: square")
    box = page.get_by_label("Image canvas", exact=False).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 60, y - 40)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=5)
    page.mouse.up()
    page.get_by_role("listbox", name="Objects on this image").get_by_role("option").first.wait_for()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("All saved").wait_for()
    first = page.locator(".side strong").inner_text()
    page.get_by_role("button", name="Next \u203a", exact=True).click()
    # (no wait_for_function here: its string predicate is eval'd, which the CSP refuses)
    expect(page.locator(".side strong")).not_to_have_text(first)

    api = live.api()
    body = json.loads(api.get(f"/api/v1/projects/{pid}/export", params={"format": "json"}).content)
    labeled = {i["name"]: i["objects"] for i in body["images"] if i["objects"]}
    assert list(labeled) == [first]
    (obj,) = labeled[first]
    assert obj["type"] == "bbox" and obj["label"] == "square" and obj["geometry"]["w"] > 10
    # The dashboard marks the image labeled.
    page.get_by_role("link", name="Close").click()
    page.locator(".tile", has_text=first).locator(".badge.ok").wait_for()
    assert errors == []
