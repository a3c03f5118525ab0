"""The team workflow in Chromium: two labelers, a reviewer and a supervisor's live view.

Assignment from the dashboard; Done and next; reject with a comment the labeler reads; fix;
accept; the supervisor's counts by state follow live. Labels given at upload count as no work.
With LABELHUB_SCREENSHOTS=docs/screenshots it saves review.png and workflow.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web._images import scene
from tests.web._shots import shot
from tests.web._tool import open_tool
from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


def kpi(page: Any, where: str, key: str, value: str) -> None:
    page.wait_for_function(
        f"document.querySelector('{where} .kpi[data-k=\"{key}\"] b')?.textContent === '{value}'")


def on_image(page: Any, name: str) -> None:
    page.wait_for_function(f"document.querySelector('.side strong')?.textContent === '{name}'")


def test_done_review_reject_fix_accept_with_assignment_and_live_counts(
        browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Team"}).json()["id"]
    people = {}
    for name, role in (("ann", "labeler"), ("bob", "labeler"), ("sue", "supervisor")):
        email, password, _ = make_user(api, name)
        assert api.post(f"/api/v1/projects/{pid}/members", json={"email": email, "role": role}).status_code == 201
        people[name] = (email, password)
    files = [("files", (f"{n}.png", scene(tmp_path / f"{n}.png", i).read_bytes(), "image/png"))
             for i, n in enumerate("abc")]
    assert api.post(f"/api/v1/projects/{pid}/images", files=files, data={"labels": "street"}).status_code == 201

    # The supervisor watches: tags given at upload are no work done.
    sup = login(browser, live)
    sup.goto(f"{live.url}/#/p/{pid}/supervisor")
    kpi(sup, "#state-kpis", "new", "3")
    kpi(sup, "#state-kpis", "finished", "0%")
    assert sup.inner_text("#kpis .kpi[data-k=labeled] b") == "3"

    # The manager assigns c.png to Bob from the dashboard selection.
    admin = login(browser, live)
    admin.goto(f"{live.url}/#/p/{pid}")
    admin.click(".tile:has-text('c.png')")
    admin.select_option("#assign-to", label="Bob")
    admin.click("#assign-btn")
    admin.wait_for_selector(".tile:has-text('c.png') .badge.assignee:has-text('Bob')")

    bob = login(browser, live, *people["bob"])
    open_tool(bob, live, pid)
    on_image(bob, "c.png")  # his assigned image first
    ann = login(browser, live, *people["ann"])
    open_tool(ann, live, pid)
    on_image(ann, "a.png")  # never Bob's
    ann.wait_for_selector("#workflow .badge.state-in_progress")
    ann.keyboard.press("Control+Enter")  # Done and next
    on_image(ann, "b.png")
    kpi(sup, "#state-kpis", "done", "1")

    # Sue reviews: Ann's image, rejected with a comment.
    sue = login(browser, live, *people["sue"])
    sue.goto(f"{live.url}/#/p/{pid}")
    sue.click("#review-btn")
    on_image(sue, "a.png")
    sue.wait_for_selector("#wf-accept")
    sue.click("#wf-reject")  # no comment yet: nothing is sent
    sue.wait_for_selector("text=Write what to fix")
    sue.fill("#review-comment", "the car on the left is missing")
    sue.click("#wf-reject")
    sue.wait_for_selector(".banner:has-text('Nothing left to review')")
    kpi(sup, "#state-kpis", "rejected", "1")

    # Ann goes back, reads the comment, fixes, marks it done again.
    ann.keyboard.press("a")
    on_image(ann, "a.png")
    ann.wait_for_selector("#review-note:has-text('the car on the left is missing')")
    shot(ann, "review.png")
    assert "Sue" in ann.inner_text("#review-note")
    ann.wait_for_selector("#workflow .badge.state-in_progress")
    ann.keyboard.press("Control+Shift+Enter")  # Done, stay
    ann.wait_for_selector("#workflow .badge.state-done")
    ann.wait_for_selector(".banner:has-text('handed over for review')")  # her lock is released

    sue.goto(f"{live.url}/#/p/{pid}/label?queue=review")
    on_image(sue, "a.png")
    sue.click("#wf-accept")
    kpi(sup, "#state-kpis", "accepted", "1")
    kpi(sup, "#review-kpis", "rejection-rate", "50%")
    sup.wait_for_function(
        "document.querySelector('#people-table tr:has(td.name) td.accepted')?.textContent === '1'")
    assert "Ann" in sup.inner_text("#people-table")
    shot(sup, "workflow.png")

    # Bob finishes his: the dashboard's state filter and badges follow.
    bob.click("#wf-done")
    bob.wait_for_selector("#workflow .badge.state-done")
    kpi(sup, "#state-kpis", "done", "1")
    admin.select_option("#state-filter", "done")
    admin.wait_for_function("document.querySelectorAll('.tile').length === 1")
    assert "c.png" in admin.inner_text(".tile")
    for page in (sup, admin, bob, ann, sue):
        assert page.js_errors == []
