"""No silent loss: an edit made offline that the server refuses after the reconnect (the lock
expired and someone else took the image) is listed as not saved and can be re-applied.

The scenario of issue 15: labeler A draws a box while the network is gone, A's lease expires, B
opens the image and edits it; when A is back, A's tool says "1 edit was not saved", lists the
box, offers Re-apply once B lets the image go, and Re-apply puts the box on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from tests.conftest import make_settings
from tests.web._images import scene
from tests.web._tool import Canvas, object_count, objects_of, open_tool, saved
from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A short lease so A's lapses during the test; the expiry is awaited (B's tool hears it), not slept.
    return make_settings(database_url, tmp_path / "data", lock_ttl_seconds=6.0)


def test_refused_offline_edit_is_listed_and_reapplied(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    bob_email, bob_password, _ = make_user(api, "bob")
    pid = api.post("/api/v1/projects", json={"name": "Flaky network"}).json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": bob_email, "role": "labeler"}).status_code == 201
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 3).read_bytes())})
    assert resp.status_code == 201, resp.text
    image = resp.json()["results"][0]["image"]["id"]

    a = login(browser, live)
    b = login(browser, live, bob_email, bob_password)
    open_tool(a, live, pid, image)
    a.wait_for_selector("#new-label")  # A holds the image
    open_tool(b, live, pid, image)
    b.wait_for_selector(".banner:has-text('is labeling this image right now')")

    # A's network goes away just after a heartbeat renewed the lease; A draws a box.
    a.evaluate("window.labelhub.hub.request('heartbeat', { active: true })")
    a.context.set_offline(True)
    a.wait_for_selector("#conn[data-state=reconnecting]")
    canvas_a = Canvas(a, 320, 240)
    a.keyboard.press("b")
    canvas_a.drag([(20, 20), (70, 60)])
    object_count(a, 1)
    a.wait_for_selector("#conn:has-text('Offline — 1 edit waiting')")
    a.wait_for_selector("#save-state[data-state=saving]")

    # A's lease expires (B's tool hears it); B takes the image and draws its own box.
    b.wait_for_selector(".banner:has-text('the image is free now')")
    b.reload()
    b.wait_for_selector("#conn[data-state=online]")
    b.wait_for_selector("#new-label")
    canvas_b = Canvas(b, 320, 240)
    b.keyboard.press("b")
    canvas_b.drag([(150, 100), (200, 150)])
    object_count(b, 1)
    saved(b)

    # A is back: the box is not lost quietly.
    a.context.set_offline(False)
    a.wait_for_selector("#conn[data-state=online]")
    a.wait_for_selector("#unsaved-title:has-text('1 edit was not saved')")
    item = a.locator("#unsaved-list li")
    assert item.count() == 1
    text = item.inner_text()
    assert "create" in text and "Box" in text and "lock was lost" in text
    assert a.get_attribute("#save-state", "data-state") == "unsaved"
    assert a.locator("#save-state").inner_text() != "All saved"
    assert a.is_disabled("#unsaved-reapply")  # B holds the image
    object_count(a, 1)  # what the server has: B's box
    assert [o["geometry"]["x"] for o in objects_of(live, pid, image)] == [150]

    # B lets the image go; A re-applies: the box is on the server, drawn on top of B's work.
    b.click("a.button:has-text('Close')")
    a.wait_for_selector("#unsaved-reapply:not([disabled])")
    a.click("#unsaved-reapply")
    a.wait_for_selector("#unsaved", state="hidden")
    object_count(a, 2)
    saved(a)
    boxes = sorted((o["geometry"]["x"], o["geometry"]["y"]) for o in objects_of(live, pid, image))
    assert boxes == [(20, 20), (150, 100)]
    assert a.locator("#save-state").inner_text() == "All saved"
    assert a.js_errors == [] and b.js_errors == []


def test_copy_as_json_and_discard(browser: Any, live: Live, tmp_path: Path) -> None:
    """A refused edit can be kept as JSON (here the clipboard is refused: a textarea shows it) and
    discarded; a reviewer's take-over refuses the edit the same way an expired lease does."""
    api = live.api()
    rita_email, rita_password, _ = make_user(api, "rita")
    pid = api.post("/api/v1/projects", json={"name": "Take over"}).json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": rita_email, "role": "labeler"}).status_code == 201
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 4).read_bytes())})
    image = resp.json()["results"][0]["image"]["id"]

    r = login(browser, live, rita_email, rita_password)
    open_tool(r, live, pid, image)
    r.wait_for_selector("#new-label")
    r.context.set_offline(True)
    r.wait_for_selector("#conn[data-state=reconnecting]")
    r.keyboard.press("b")
    Canvas(r, 320, 240).drag([(30, 30), (90, 80)])
    r.wait_for_selector("#conn:has-text('Offline — 1 edit waiting')")
    # The admin (a reviewer) takes the image over while Rita is away.
    admin = login(browser, live)
    open_tool(admin, live, pid, image)
    admin.click("#take-over")
    admin.wait_for_selector("#new-label")
    r.context.set_offline(False)
    r.wait_for_selector("#unsaved-title:has-text('1 edit was not saved')")
    assert r.is_disabled("#unsaved-reapply")
    r.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); }")
    r.click("#unsaved-copy")
    copied = r.locator("#unsaved-json").input_value()
    assert '"kind": "create"' in copied and f'"image": {image}' in copied
    r.click("#unsaved-discard")
    r.wait_for_selector("#unsaved", state="hidden")
    r.wait_for_selector("#save-state[data-state=saved]")
    assert objects_of(live, pid, image) == []
    assert r.js_errors == [] and admin.js_errors == []
