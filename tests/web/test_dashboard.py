"""Dashboard in Chromium: log in, create a project, upload with labels, label panel, filters, members."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from server.db import make_engine, make_sessionmaker, transaction
from server.models import Image
from server.settings import Settings
from server.storage import LocalStore, original_key, thumb_key
from tests.web._images import scene
from tests.web._tool import open_tool
from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


def test_upload_label_panel_and_filters(browser: Any, live: Live, tmp_path: Path) -> None:
    page = login(browser, live)
    page.fill("#new-project-name", "Birds")
    page.click("text=Create project")
    page.wait_for_selector("#label-images")
    # Upload two images and one non-image with labels; the bad file gets its own error.
    a, b = scene(tmp_path / "a.png", 1), scene(tmp_path / "b.png", 2)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    page.click("#upload-btn")
    page.set_input_files("#upload-files", [str(a), str(b), str(notes)])
    page.fill("#upload-labels", "cat, dog")
    page.click("dialog button[type=submit]")
    page.wait_for_selector("dialog .results li.error")
    assert "notes.txt" in page.inner_text("dialog .results")
    assert page.locator("dialog progress").get_attribute("value") == "1"
    page.click("dialog [aria-label=Close]")
    page.wait_for_selector(".tile >> nth=1")
    assert page.locator(".tile").count() == 2
    # The first label added is the default: its chip is marked.
    first = page.locator(".tile").first
    assert first.locator(".chip.default").inner_text() == "cat"
    # Clicking a chip makes it the default on that image.
    first.locator(".chip", has_text="dog").click()
    page.wait_for_function("document.querySelector('.tile .chip.default')?.textContent === 'dog'")
    # A new label, + on the selected image, then rename inline.
    page.fill("#new-label", "bird")
    page.click(".label-panel button[type=submit]")
    page.wait_for_selector(".label-row[data-name=bird]")
    page.locator(".tile").nth(1).click()
    assert "1 selected" in page.inner_text(".sel-count")
    page.click(".label-row[data-name=bird] .plus")
    page.wait_for_selector(".tile >> nth=1 >> .chip:has-text('bird')")
    page.click(".label-row[data-name=bird] .label-name")
    page.wait_for_function("document.activeElement?.classList.contains('rename')")
    page.keyboard.press("Control+a")
    page.keyboard.type("parrot")
    page.keyboard.press("Enter")
    page.wait_for_selector(".tile >> nth=1 >> .chip:has-text('parrot')")
    # Filter by label: only the image with "parrot" remains.
    page.select_option("select[name=label]", "parrot")
    page.wait_for_function("document.querySelectorAll('.tile').length === 1")
    # Select all (Ctrl+A) then minus removes "parrot" from the filtered images.
    page.click("text=Clear filters")
    page.wait_for_function("document.querySelectorAll('.tile').length === 2")
    page.focus(".grid")
    page.keyboard.press("Control+a")
    assert "2 selected" in page.inner_text(".sel-count")
    page.click(".label-row[data-name=parrot] .minus")
    # No tile shows it any more (the grid reloads after the server answered). The first tile's
    # chips alone, as this waited for before, never held it: the read below raced the removal.
    page.wait_for_function("![...document.querySelectorAll('.tile .chip')].some((c) => c.textContent.includes('parrot'))")
    api = live.api()
    pid = int(page.url.split("/p/")[1].split("?")[0].split("/")[0])
    names = [[lab["name"] for lab in i["labels"]] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"]]
    assert names == [["cat", "dog"], ["cat", "dog"]]
    # Keyboard only: arrows move, Space selects, Enter opens the labeling tool on that image.
    page.focus(".grid")
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    assert "1 selected" in page.inner_text(".sel-count")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'b.png'")
    assert page.js_errors == []


def test_members_page_changes_roles(browser: Any, live: Live) -> None:
    api = live.api()
    email, _, uid = make_user(api, "lena")
    pid = api.post("/api/v1/projects", json={"name": "Team"}).json()["id"]
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}/members")
    page.fill("#member-email", email)
    page.select_option("#member-role", "labeler")
    page.click("form.inline-form button[type=submit]")
    row = page.locator(f"tr[data-user='{uid}']")
    row.wait_for()
    row.locator("select").select_option("viewer")
    page.wait_for_selector(f"tr[data-user='{uid}'] input[aria-label$='label']:not(:checked)")
    members = {m["user_id"]: m for m in api.get(f"/api/v1/projects/{pid}/members").json()["members"]}
    assert members[uid]["role"] == "viewer"
    # A single privilege flag on top of the preset.
    row = page.locator(f"tr[data-user='{uid}']")
    row.locator("input[aria-label$='upload']").check()
    page.wait_for_function(f"document.querySelector(\"tr[data-user='{uid}'] select\").value === 'custom'")
    members = {m["user_id"]: m for m in api.get(f"/api/v1/projects/{pid}/members").json()["members"]}
    assert members[uid]["privileges"] == ["view", "upload"]
    # Remove (after a confirmation); an email without an account is invited (a site admin gets
    # the link that makes the account) and listed as invited.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Remove')").click()
    page.wait_for_selector(f"tr[data-user='{uid}']", state="detached")
    assert uid not in {m["user_id"] for m in api.get(f"/api/v1/projects/{pid}/members").json()["members"]}
    page.fill("#member-email", "nobody@example.com")
    page.click("form.inline-form button[type=submit]")
    page.wait_for_selector(".invite-notice:has-text('nobody@example.com is invited as labeler')")
    assert "/#/invite/" in page.input_value(".invite-notice .invite-link")
    page.wait_for_selector(".pending-invitations td:has-text('nobody@example.com')")
    assert page.js_errors == []


def test_settings_panel_saves_project_and_shortcuts(browser: Any, live: Live) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "S"}).json()["id"]
    api.post(f"/api/v1/projects/{pid}/labels", json={"name": "car"})
    page = login(browser, live)
    # The settings have an address of their own: the dashboard with the settings open.
    page.goto(f"{live.url}/#/p/{pid}/settings")
    page.wait_for_selector("#settings-save")
    # Every labeling setting the server knows has a field.
    keys = set(api.get(f"/api/v1/projects/{pid}/settings").json()["project"]) - {"label_shortcuts"}
    missing = [k for k in sorted(keys) if not page.locator(f"#ps-{k}").count()]
    assert keys and missing == []
    page.check("#ps-synchronize_labels")
    page.fill("#ps-fixed_bbox_aspect_ratio", "1.5")
    page.select_option("select[aria-label='Label for key 3']", "car")
    page.uncheck("#my-skip_images_being_labeled")
    page.click("#settings-save")
    page.wait_for_selector("dialog", state="detached")
    assert page.evaluate("location.hash") == f"#/p/{pid}"
    got = api.get(f"/api/v1/projects/{pid}/settings").json()["project"]
    assert got["synchronize_labels"] is True
    assert got["fixed_bbox_aspect_ratio"] == 1.5
    assert got["label_shortcuts"] == {"3": "car"}
    # The shortcut shows in the label panel; the `?` overlay lists every shortcut.
    page.wait_for_selector(".label-row[data-name=car] kbd:has-text('3')")
    page.focus(".grid")
    page.keyboard.press("?")
    page.wait_for_selector("#shortcuts")
    assert "Undo" in page.inner_text("#shortcuts")


def test_import_and_export_dialogs(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Transfer"}).json()["id"]
    png = scene(tmp_path / "a.png", 4).read_bytes()
    assert api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", png)}).status_code == 201
    csv = tmp_path / "labels.csv"
    csv.write_text("image,labels,default_label\na.png,cat;dog,dog\nmissing.png,cat,\n")
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}")
    page.click("#import-btn")
    page.select_option("#import-format", "csv")
    page.set_input_files("#import-file", str(csv))
    page.click("text=Check first (dry run)")
    page.wait_for_selector("dialog .report li.error")
    assert "missing.png" in page.inner_text("dialog .report")
    # Nothing was written by the dry run; a real import of the bad file is refused as a whole.
    page.click("dialog .report >> xpath=.. >> button.primary")
    page.wait_for_selector("dialog .report p.error")
    assert api.get(f"/api/v1/projects/{pid}/images").json()["images"][0]["labels"] == []
    page.click("dialog [aria-label=Close]")
    page.click("#export-btn")
    page.select_option("#export-format", "csv")
    href = page.get_attribute("#export-download", "href")
    assert href == f"/api/v1/projects/{pid}/export?format=csv"
    with page.expect_download() as info:
        page.click("#export-download")
    assert info.value.suggested_filename.endswith(".csv")
    page.click("dialog [aria-label=Close]")

    # A folder upload keeps the folder in the names and applies the typed labels.
    folder = tmp_path / "street"
    folder.mkdir()
    scene(folder / "x.png", 7)
    scene(folder / "y.png", 8)
    page.click("#upload-btn")
    page.select_option("#upload-mode", "folder")
    page.set_input_files("#upload-files", str(folder))
    page.fill("#upload-labels", "street")
    page.click("dialog button[type=submit]")
    page.wait_for_selector("dialog p:has-text('Done: 2 uploaded')")
    got = {i["name"]: [lab["name"] for lab in i["labels"]] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"]}
    assert got == {"a.png": [], "street/x.png": ["street"], "street/y.png": ["street"]}
    assert page.js_errors == []


def _many_images(settings: Settings, pid: int, sha: str, count: int) -> None:
    """`count` image rows written straight into the database, sharing one stored file (hard links)."""
    store = LocalStore(settings.data_dir)
    rows = []
    for i in range(count):
        fake = f"{i:08x}" + sha[8:]
        for key in (original_key, thumb_key):
            src, dst = store.path(key(sha)), store.path(key(fake))
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
        rows.append({"project_id": pid, "name": f"bulk/img-{i:05d}.png", "sha256": fake, "mime": "image/png",
                     "size_bytes": 1, "width": 320, "height": 240, "auto_labeled": i % 7 == 0})

    async def write() -> None:
        engine = make_engine(settings.database_url)
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                await session.execute(insert(Image), rows)
        finally:
            await engine.dispose()

    # Playwright's sync API owns this thread's event loop: insert from another thread.
    worker = threading.Thread(target=asyncio.run, args=(write(),))
    worker.start()
    worker.join()


def test_ten_thousand_images_page_by_page(browser: Any, live: Live, settings: Settings, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Big"}).json()["id"]
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 6).read_bytes())})
    assert resp.status_code == 201, resp.text
    _many_images(settings, pid, hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest(), 9_999)

    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}")
    page.wait_for_function("document.querySelectorAll('.tile').length === 60")
    assert "of 167 (10000 images)" in page.inner_text(".pager")
    # Any page is one step away: the last page by its number, then Page Up from the grid.
    page.fill("#page-input", "167")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('.tile .tile-name')?.textContent === 'bulk/img-09959.png'")
    assert page.locator(".tile").count() == 40
    page.keyboard.press("PageUp")
    page.wait_for_function("document.querySelector('#page-input').value === '166'")
    assert page.locator(".tile").count() == 60
    # Filters and select-all work on all 10,000 without loading them.
    page.select_option("select[name=auto_labeled]", "true")
    page.wait_for_function("document.querySelector('.pager')?.textContent.includes('(1429 images)')")
    page.focus(".grid")
    page.keyboard.press("Control+a")
    assert "1429 selected (all matching)" in page.inner_text(".sel-count")
    # Thumbnails load lazily: only about a page's worth were requested.
    thumbs = page.evaluate("performance.getEntriesByType('resource').filter((e) => e.name.includes('/thumbnail')).length")
    assert thumbs <= 4 * 60, thumbs
    # Delete with "all matching" deletes all of it (not the page on screen), after a
    # confirmation that states the number.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click(".toolbar button.danger")
    page.wait_for_selector(".toast:has-text('Deleted 1429 image(s)')")
    assert asked and asked[0].startswith("Delete 1429 image(s)")
    assert api.get(f"/api/v1/projects/{pid}/images").json()["total"] == 10_000 - 1429
    assert api.get(f"/api/v1/projects/{pid}/images", params={"auto_labeled": "true"}).json()["total"] == 0
    assert page.js_errors == []


def test_live_badges_selection_and_label_tools(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    bob_email, bob_password, _ = make_user(api, "bob")
    pid = api.post("/api/v1/projects", json={"name": "Live"}).json()["id"]
    assert api.post(f"/api/v1/projects/{pid}/members", json={"email": bob_email, "role": "labeler"}).status_code == 201
    # A ZIP upload labels each image with its folder's name.
    archive = tmp_path / "shots.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, folder in enumerate(["cats", "cats", "dogs", "dogs"]):
            zf.write(scene(tmp_path / f"{i}.png", 10 + i), f"{folder}/{i}.png")
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}")
    page.click("#upload-btn")
    page.select_option("#upload-mode", "zip")
    page.set_input_files("#upload-files", str(archive))
    page.check("#upload-folders")
    page.click("dialog button[type=submit]")
    page.wait_for_selector("dialog p:has-text('Done: 4 uploaded')")
    page.click("dialog [aria-label=Close]")
    page.wait_for_selector(".tile >> nth=3")
    ids = [i["id"] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"]]
    names = {i["id"]: [lab["name"] for lab in i["labels"]] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"]}
    assert [names[i] for i in ids] == [["cats"], ["cats"], ["dogs"], ["dogs"]]

    # Bob opens the first image: its tile shows the lock, then Bob's cursor, live.
    bob = login(browser, live, bob_email, bob_password)
    open_tool(bob, live, pid, ids[0])
    tile = page.locator(f".tile[data-id='{ids[0]}']")
    tile.locator(".badge.lock:has-text('Bob')").wait_for()
    # The admin watches the same image: read-only, and sees where Bob points.
    watcher = login(browser, live)
    open_tool(watcher, live, pid, ids[0])
    box = bob.locator("#tool-canvas").bounding_box()
    bob.mouse.move(box["x"] + 200, box["y"] + 200)
    bob.mouse.move(box["x"] + 220, box["y"] + 210, steps=3)
    watcher.wait_for_selector("#here:has-text('Bob')")
    tile.locator(".badge.presence:has-text('Bob')").wait_for()
    # Filter "being labeled now" finds it.
    page.select_option("select[name=locked]", "true")
    page.wait_for_function("document.querySelectorAll('.tile').length === 1")
    page.click("text=Clear filters")
    page.wait_for_function("document.querySelectorAll('.tile').length === 4")

    # Shift+click selects a range; "Label images" opens the tool on just the selection.
    page.locator(".tile").nth(1).click()
    page.locator(".tile").nth(2).click(modifiers=["Shift"])
    assert "2 selected" in page.inner_text(".sel-count")
    page.click("#label-images")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'cats/1.png'")
    page.keyboard.press("d")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'dogs/2.png'")
    page.keyboard.press("d")
    page.wait_for_selector("#toasts:has-text('No more images to label with this selection')")
    assert page.inner_text(".side strong") == "dogs/2.png"
    # With no selection, "Label images" follows the filter.
    page.goto(f"{live.url}/#/p/{pid}?label=dogs")
    page.wait_for_function("document.querySelectorAll('.tile').length === 2")
    page.click("#label-images")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'dogs/2.png'")
    page.keyboard.press("d")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'dogs/3.png'")

    # Label panel: the color picker recolors a label; the star makes it the default everywhere.
    page.goto(f"{live.url}/#/p/{pid}")
    page.wait_for_selector(".tile >> nth=3")
    page.locator(".tile").nth(3).click()
    page.click(".label-row[data-name=cats] .plus")
    page.wait_for_selector(f".tile[data-id='{ids[3]}'] .chip:has-text('cats')")
    # The panel redraws its rows after a change: wait for the redraw.
    page.evaluate("document.querySelector('.label-row[data-name=cats]').dataset.old = 'yes'")
    page.locator(".label-row[data-name=cats] input[type=color]").fill("#123456")
    page.wait_for_function("document.querySelector('.label-row[data-name=cats]')?.dataset.old === undefined")
    page.click(".label-row[data-name=cats] .more")
    page.click(".label-row[data-name=cats] .menu >> text=★ Default everywhere")
    page.wait_for_selector(f".tile[data-id='{ids[3]}'] .chip.default:has-text('cats')")
    labels = {lab["name"]: lab for lab in api.get(f"/api/v1/projects/{pid}/labels").json()["labels"]}
    assert labels["cats"]["color"] == "#123456"

    # Right-click on a tile opens its menu, acting on that tile (it becomes the selection):
    # "Label images…" adds a label to it.
    page.locator(".tile").nth(2).click(button="right")
    menu = page.locator(f".tile[data-id='{ids[2]}'] .menu:not([hidden])")
    menu.wait_for()
    assert "1 selected" in page.inner_text(".sel-count")
    assert [t.strip() for t in menu.locator("[role=menuitem]").all_inner_texts()] == [
        "Open in the labeling tool", "Find similar images", "Label images…", "Mark done", "Delete…"]
    menu.locator("text=Label images…").click()
    page.select_option("#label-dialog-label", "cats")
    page.click("#label-dialog-add")
    page.wait_for_selector(f".tile[data-id='{ids[2]}'] .chip:has-text('cats')")
    assert page.locator(".chip:has-text('cats')").count() == 2 + 2  # cats/0, cats/1, dogs/3, dogs/2
    # "Mark done" from the menu takes the lock for the moment it needs; an image Bob is
    # labeling is left alone, and the menu says why.
    page.locator(".tile").nth(2).click(button="right")
    page.locator(f".tile[data-id='{ids[2]}'] .menu:not([hidden]) >> text=Mark done").click()
    page.wait_for_selector(f".tile[data-id='{ids[2]}'] [data-state=done]")
    assert api.get(f"/api/v1/images/{ids[2]}").json()["state"] == "done"
    page.locator(f".tile[data-id='{ids[0]}']").click(button="right")
    page.locator(f".tile[data-id='{ids[0]}'] .menu:not([hidden]) >> text=Mark done").click()
    page.wait_for_selector("#toasts:has-text('being labeled by Bob')")
    assert api.get(f"/api/v1/images/{ids[0]}").json()["state"] != "done"
    assert page.js_errors == [] and bob.js_errors == [] and watcher.js_errors == []
