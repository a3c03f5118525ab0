"""Browser tests: a live server (uvicorn in a thread, SQLite) and Debian's chromium via Playwright.

Chromium is never downloaded: we drive /usr/bin/chromium. Where it is missing the tests skip,
naming the install command, unless LABELHUB_REQUIRE_BROWSER=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from client.rest import _tls_context
from server.app import create_app
from server.settings import Settings
from tests._db import SqliteTemplate
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
    if os.environ.get("LABELHUB_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def database_url(sqlite_template: SqliteTemplate, tmp_path: Path) -> str:
    """Browser tests run on SQLite only (the server code paths are tested on both elsewhere)."""
    return sqlite_template.copy(tmp_path / "web.db")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", lock_ttl_seconds=30.0)


@dataclass
class Live:
    url: str
    closers: list[Any] = field(default_factory=list)

    def api(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30, verify=_tls_context())  # the SDK's shared context
        self.closers.append(client.close)
        resp = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        client.headers["Authorization"] = f"Bearer {resp.json()['token']}"
        client.cookies.clear()
        return client


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()

    def wait() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.02)

    wait()
    assert server.started, "the live server did not start"
    live = Live(f"http://127.0.0.1:{port}")
    try:
        yield live
    finally:
        for close in reversed(live.closers):
            close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def login(browser: Any, live: Live, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Any:
    """A fresh browser context, logged in through the login page; returns the page."""
    # Playwright evaluates wait_for_function's string predicates with eval in the page, which
    # the server's Content-Security-Policy forbids; test_first_run.py runs the app under it.
    context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
    live.closers.append(context.close)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(live.url + "/#/login")
    page.fill("#login-email", email)
    page.fill("#login-password", password)
    page.click("form button[type=submit]")
    page.wait_for_selector(".project-list")
    return page


def make_user(admin: httpx.Client, name: str) -> tuple[str, str, int]:
    email, password = f"{name}@example.com", "password-123"
    resp = admin.post("/api/v1/users", json={"email": email, "password": password, "name": name.title()})
    assert resp.status_code == 201, resp.text
    return email, password, int(resp.json()["id"])
