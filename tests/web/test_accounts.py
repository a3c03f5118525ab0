"""Accounts in the browser: an invitation link makes an account that then joins a project it
was invited to; changing one's password; a site admin resetting a password and deactivating."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.conftest import Live, login, make_user

pytestmark = pytest.mark.browser


def _anonymous_page(browser: Any, live: Live) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
    live.closers.append(context.close)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


def _login_status(live: Live, email: str, password: str) -> int:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        return client.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code


def test_an_invitation_link_makes_an_account_that_joins_the_project(browser: Any, live: Live) -> None:
    admin_api = live.api()
    owner_email, owner_password, _ = make_user(admin_api, "olga")
    owner = live.api(owner_email, owner_password)
    pid = owner.post("/api/v1/projects", json={"name": "Birds"}).json()["id"]
    invited = owner.post(f"/api/v1/projects/{pid}/members", json={"email": "nia@example.com", "role": "labeler"})
    assert invited.status_code == 202 and "link" not in invited.json()

    # The site admin sees the invitation waiting for an account and makes the link.
    admin = login(browser, live)
    admin.click("#users-link")
    admin.wait_for_selector("table.users tbody tr")
    admin.click("text=Make an account link")
    link = admin.wait_for_selector(".invite-link").input_value()
    assert "/#/invite/" in link

    nia = _anonymous_page(browser, live)
    nia.goto(link)
    nia.wait_for_selector("#invite-name")
    assert "nia@example.com" in nia.inner_text("main")
    nia.fill("#invite-name", "Nia")
    nia.fill("#invite-password", "nia-password-1")
    nia.fill("#invite-again", "nia-password-2")
    nia.click("form button[type=submit]")
    nia.wait_for_selector("text=The two passwords differ.")
    nia.fill("#invite-again", "nia-password-1")
    nia.click("form button[type=submit]")
    nia.wait_for_selector(".project-list")
    assert nia.inner_text("#who") == "Nia"
    card = nia.wait_for_selector(".invitation")
    assert "Olga invited you to join “Birds”" in card.inner_text()
    card.query_selector("text=Join").click()
    nia.wait_for_selector(".project-list a.project-link:has-text('Birds')")
    assert nia.query_selector(".invitation") is None

    # Used once: the link now says so.
    again = _anonymous_page(browser, live)
    again.goto(link)
    again.wait_for_selector("text=was used already or has expired")
    assert nia.js_errors == [] and admin.js_errors == [] and again.js_errors == []


def test_changing_ones_password(browser: Any, live: Live) -> None:
    email, password, _ = make_user(live.api(), "pia")
    elsewhere = live.api(email, password)  # another session of hers, signed out by the change
    page = login(browser, live, email, password)
    page.click("#who")
    page.wait_for_selector("#password-current")
    page.fill("#password-current", "not-my-password")
    page.fill("#password-new", "pia-new-password")
    page.fill("#password-again", "pia-new-password")
    page.click("text=Change password >> nth=-1")
    page.wait_for_selector("text=The current password is wrong.")
    page.fill("#password-current", password)
    page.fill("#password-new", "pia-new-password")
    page.fill("#password-again", "pia-new-password")
    page.click("text=Change password >> nth=-1")
    page.wait_for_selector("text=Your password was changed.")
    assert elsewhere.get("/api/v1/me").status_code == 401
    assert _login_status(live, email, password) == 401
    assert _login_status(live, email, "pia-new-password") == 200
    # This tab goes on with its fresh session.
    page.click(".brand")
    page.wait_for_selector(".project-list")
    assert page.url.endswith("#/") and page.js_errors == []


def test_a_site_admin_resets_a_password_and_deactivates(browser: Any, live: Live) -> None:
    email, password, uid = make_user(live.api(), "rex")
    theirs = live.api(email, password)
    page = login(browser, live)
    page.goto(f"{live.url}/#/users")
    row = f"tr[data-user='{uid}']"
    page.click(f"{row} >> text=Reset password")
    page.fill("#reset-password", "rex-new-password")
    page.click("dialog >> text=Set password")
    page.wait_for_selector("text=password was reset")
    assert theirs.get("/api/v1/me").status_code == 401
    assert _login_status(live, email, "rex-new-password") == 200

    page.on("dialog", lambda dialog: dialog.accept())
    # The buttons by their exact text: "text=Deactivate" also matches the status cell's
    # "deactivated", so the wait after "Reactivate" ended before the change had landed.
    page.click(f"{row} button:text-is('Deactivate')")
    page.wait_for_selector(f"{row} button:text-is('Reactivate')")
    assert _login_status(live, email, "rex-new-password") == 401
    page.click(f"{row} button:text-is('Reactivate')")
    page.wait_for_selector(f"{row} button:text-is('Deactivate')")
    assert _login_status(live, email, "rex-new-password") == 200
    assert page.js_errors == []
