"""An expired session sends the person to the login page and, once logged in again, back to
the page they were on (the hash route is remembered as ?next=)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.hub import revocation
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.web._images import scene
from tests.web._tool import open_tool
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


def log_in_again(page: Any) -> None:
    page.wait_for_selector("#login-email")
    page.fill("#login-email", ADMIN_EMAIL)
    page.fill("#login-password", ADMIN_PASSWORD)
    page.click("form button[type=submit]")


def test_expired_session_returns_to_the_same_page(browser: Any, live: Live, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Return"}).json()["id"]
    resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": ("a.png", scene(tmp_path / "a.png", 2).read_bytes())})
    image = resp.json()["results"][0]["image"]["id"]
    page = login(browser, live)

    # Expired while away: the reload finds no session, logs in, and is back in the tool on that image.
    open_tool(page, live, pid, image)
    page.context.clear_cookies()
    page.reload()
    page.wait_for_url("**/#/login?next=*")
    # A page without a live socket shows no connection pill (it would only say "Offline").
    assert page.is_hidden("#conn")
    log_in_again(page)
    page.wait_for_function(f"location.hash === '#/p/{pid}/label/{image}'")
    page.wait_for_selector("#conn[data-state=online]")
    page.wait_for_function("document.querySelector('.side strong')?.textContent === 'a.png'")

    # Expired while using the app: the next request's 401 remembers the page being opened.
    page.context.clear_cookies()
    page.goto(f"{live.url}/#/p/{pid}/members")
    page.wait_for_url("**/#/login?next=*")
    log_in_again(page)
    page.wait_for_function(f"location.hash === '#/p/{pid}/members'")
    page.wait_for_selector("main h1, main table")
    page.goto(f"{live.url}/#/projects")
    page.wait_for_selector("#conn", state="hidden")

    # Expired while the tool's socket is open: closed with 4401 "session expired" (the login
    # token's TTL; here every login token is taken to be at its end), the app says so, goes to
    # the login page and, once logged in, back to the tool.
    monkeypatch.setattr(revocation, "seconds_left",
                        lambda c: None if c is None or c.expires_at is None else 0.0)
    # One fresh load, so one socket, opened after the patch. (Going to the tool by its hash and
    # then reloading raced: the first page's socket could be closed, toast and all, before the
    # reload replaced that page, and the reloaded login page had no toast to show.)
    page.goto("about:blank")
    page.goto(f"{live.url}/#/p/{pid}/label/{image}")
    page.wait_for_url("**/#/login?next=*")
    page.wait_for_selector("#toasts:has-text('Your session expired')")
    monkeypatch.undo()
    log_in_again(page)
    page.wait_for_function(f"location.hash === '#/p/{pid}/label/{image}'")
    page.wait_for_selector("#conn[data-state=online]")
    assert page.js_errors == []
