"""Dashboard in Chromium: log in, create a project, upload with labels, label panel, filters, members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
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
    page.wait_for_function("!document.querySelector('.tile .chip')?.parentElement.textContent.includes('parrot')")
    api = live.api()
    pid = int(page.url.split("/p/")[1].split("?")[0].split("/")[0])
    names = [[lab["name"] for lab in i["labels"]] for i in api.get(f"/api/v1/projects/{pid}/images").json()["images"]]
    assert names == [["cat", "dog"], ["cat", "dog"]]
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
    # Remove (after a confirmation); adding an email without an account says so in plain words.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Remove')").click()
    page.wait_for_selector(f"tr[data-user='{uid}']", state="detached")
    assert uid not in {m["user_id"] for m in api.get(f"/api/v1/projects/{pid}/members").json()["members"]}
    page.fill("#member-email", "nobody@example.com")
    page.click("form.inline-form button[type=submit]")
    page.wait_for_selector(".error:has-text('There is no account with the email nobody@example.com')")
    assert page.js_errors == []


def test_settings_panel_saves_project_and_shortcuts(browser: Any, live: Live) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "S"}).json()["id"]
    api.post(f"/api/v1/projects/{pid}/labels", json={"name": "car"})
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}")
    page.click("#settings-btn")
    page.check("#ps-synchronize_labels")
    page.fill("#ps-fixed_bbox_aspect_ratio", "1.5")
    page.select_option("select[aria-label='Label for key 3']", "car")
    page.uncheck("#my-skip_images_being_labeled")
    page.click("#settings-save")
    page.wait_for_selector("dialog", state="detached")
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
