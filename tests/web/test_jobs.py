"""The dashboard's jobs panel in Chromium: a progress bar moved by a real worker, and cancel."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from server.db import dispose, make_engine, make_sessionmaker, transaction
from server.jobs import defer
from server.settings import Settings
from tests._db import _in_thread
from tests.jobs.conftest import worker_process
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


async def _defer(settings: Settings, project: int, user: int) -> int:
    engine = make_engine(settings.resolved_database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await defer(session, kind="count", project_id=project, created_by=user,
                               params={"to": 4000, "step_seconds": 0.01})
    finally:
        await dispose(engine)


def test_jobs_panel_shows_live_progress_and_cancels(browser: Any, live: Live, settings: Settings,
                                                    tmp_path: Path) -> None:
    admin = live.api()
    project = admin.post("/api/v1/projects", json={"name": "Jobs"}).json()["id"]
    me = admin.get("/api/v1/me").json()["id"]
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{project}")
    page.wait_for_selector("#label-images")
    assert page.locator(".jobs").is_hidden()  # no job: no panel
    # Playwright's sync API runs a loop in this thread: defer from another one.
    job = _in_thread(lambda: asyncio.run(_defer(settings, project, me)))
    row = f".jobs [data-job='{job}']"
    page.wait_for_selector(f"{row}.queued")  # heard over the socket, no reload
    with worker_process(settings, tmp_path):
        page.wait_for_selector(f"{row}.running")
        page.wait_for_function(f"Number(document.querySelector(\"{row} progress\")?.value) > 0")
        assert page.locator(f"{row} progress").get_attribute("max") == "4000"
        # Progress updates the row in place: a button rebuilt on every event, many a second,
        # could lose a click between press and release (this test once did).
        seen = page.evaluate(f"""() => {{ window.cancelButton = document.querySelector("{row} button");
            return Number(document.querySelector("{row} progress").value); }}""")
        page.wait_for_function(f"Number(document.querySelector(\"{row} progress\").value) > {seen}")
        assert page.evaluate("window.cancelButton.isConnected")
        page.click(f"{row} button:has-text('Cancel')")
        page.wait_for_selector(f"{row}.cancelled")
    done = admin.get(f"/api/v1/projects/{project}/jobs/{job}").json()
    assert done["status"] == "cancelled" and 0 < done["progress"]["done"] < 4000
    assert page.js_errors == []


def test_a_job_queued_while_the_list_loads_stays_in_the_panel(browser: Any, live: Live,
                                                             settings: Settings) -> None:
    """The panel asks for the active jobs as the dashboard opens; a job queued after the server
    read that list is heard over the socket before the list arrives. The list (without the job)
    must not take the job off the panel: it stayed hidden until the job next changed (a CI run
    of test_jobs_panel_shows_live_progress_and_cancels waited 30 s for it)."""
    admin = live.api()
    project = admin.post("/api/v1/projects", json={"name": "Jobs"}).json()["id"]
    me = admin.get("/api/v1/me").json()["id"]
    page = login(browser, live)
    held: list[tuple[Any, Any, int]] = []

    def hold(route: Any) -> None:
        # The server reads the list now, then the job is queued; the browser gets the list later.
        answer = route.fetch()
        job = _in_thread(lambda: asyncio.run(_defer(settings, project, me)))
        held.append((route, answer, job))

    page.route(re.compile(rf"/api/v1/projects/{project}/jobs\?status="), hold, times=1)
    page.goto(f"{live.url}/#/p/{project}")
    page.wait_for_selector(".jobs[aria-busy='true'] li.job.queued")  # heard while the list waits
    assert len(held) == 1
    route, answer, job = held[0]
    assert answer.json()["jobs"] == []
    route.fulfill(response=answer)
    page.wait_for_selector(".jobs:not([aria-busy])", state="attached")  # the list applied
    assert page.locator(f".jobs [data-job='{job}'].queued").count() == 1
    assert page.js_errors == []


def test_a_job_announced_before_the_socket_joined_shows_once_it_has(browser: Any, live: Live,
                                                                     settings: Settings) -> None:
    """A job is announced once, to the sockets in its project's room then. A page whose list
    was read before the job was queued, and whose socket joined after the announcement, never
    showed it (a CI run of test_jobs_panel_shows_live_progress_and_cancels waited 30 s for it):
    the panel reads the list again whenever its socket comes online."""
    admin = live.api()
    project = admin.post("/api/v1/projects", json={"name": "Jobs"}).json()["id"]
    me = admin.get("/api/v1/me").json()["id"]
    watcher = login(browser, live)  # in the room: the announcement is made, and seen here
    watcher.goto(f"{live.url}/#/p/{project}")
    watcher.wait_for_selector("#conn[data-state=online]")
    page = login(browser, live)
    held: list[Any] = []
    released: list[bool] = []

    def route_socket(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if not released and isinstance(message, str) and '"hello"' in message:
                held.append(lambda: server.send(message))  # joins once the job is announced
                return
            server.send(message)

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r"/api/v1/ws"), route_socket)
    with page.expect_response(re.compile(rf"/api/v1/projects/{project}/jobs\?status=")) as listed:
        page.goto(f"{live.url}/#/p/{project}")
    assert listed.value.json()["jobs"] == []
    page.wait_for_selector("#label-images")
    job = _in_thread(lambda: asyncio.run(_defer(settings, project, me)))
    watcher.wait_for_selector(f".jobs [data-job='{job}'].queued")  # announced
    released.append(True)
    for send in held:
        send()
    page.wait_for_selector("#conn[data-state=online]")
    page.wait_for_selector(f".jobs [data-job='{job}'].queued")
    assert page.js_errors == [] and watcher.js_errors == []
