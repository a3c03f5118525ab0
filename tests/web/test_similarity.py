"""Labeling by similarity in Chromium: the dashboard's "Label by similarity" page, the tool's
suggested labels with the Y key, "Find similar images" from a tile's menu, and label sources."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from client import LabelhubClient
from server.protocol import JobEvent
from server.settings import Settings
from tests._db import _in_thread
from tests.jobs.conftest import worker_process
from tests.web._tool import open_tool
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser


# --- the pure helpers (views/scores.js), inside the page -----------------------------------

CHECKS = r"""
async () => {
  const s = await import("/views/scores.js");
  const router = await import("/router.js");
  const keys = await import("/tool/keys.js");
  const items = [{ image: 1, similarity: 0.95 }, { image: 2, similarity: 0.9 }, { image: 3, similarity: 0.5 }, { image: 4, similarity: 0.45 }];
  return {
    pct: [s.pct(0.934), s.pct(1.2), s.pct(undefined)],
    score2: [s.score2(0.95), s.score2(0.939), s.score2(0.9)],
    above: [...s.selectAbove(items, "0.9")],
    aboveShown: [...s.selectAbove([{ image: 5, similarity: 0.9399999999999 }], s.score2(0.9399999999999))],
    keep: [...s.keepSelected(new Set([1, 3, 9]), items)],
    threshold: [s.suggestThreshold(items), s.suggestThreshold([{ image: 1, similarity: 0.77 }]), s.suggestThreshold([])],
    pending: s.pendingLabels({ image: 9, labels: [{ label: "dog", score: 0.07 }, { label: "cat", score: 0.91 }, { label: "cow", score: 0.02 }] },
      [{ label: "cow", is_default: true }]).map((x) => x.label),
    notReady: [s.notReady({ status: 409, code: "not_ready", error: { code: "not_ready", job: { id: 4, progress: { done: 120, total: 500 } } } }),
      s.notReady({ status: 409, code: "not_ready", error: { job: { id: 4, status: "failed", progress: { done: 1, total: 5 } } } }),
      s.notReady({ status: 409, code: "conflict" }), s.notReady(null)],
    job: [s.jobProgress({ type: "job", job: { id: 4, status: "running", progress: { done: 3, total: 9 } } }, 4),
      s.jobProgress({ type: "job", job: { id: 4, status: "done", progress: { done: 9, total: 9 } } }, 4),
      s.jobProgress({ type: "job", job: { id: 4, status: "failed", progress: { done: 2, total: 9 } } }, 4),
      s.jobProgress({ type: "job", job: { id: 5, status: "done", progress: { done: 1, total: 1 } } }, 4),
      s.jobProgress({ type: "progress" }, 4)],
    text: [s.featuresText({ done: 120, total: 500 }), s.featuresText({})],
    body: s.acceptBody(new Set([7, 8]), "cat"),
    summary: [s.acceptSummary({ applied: [{}, {}], skipped: [] }, "cat"),
      s.acceptSummary({ applied: [{}], skipped: [{ image: 3, reason: "locked" }, { image: 4, reason: "already_labeled" }] }, "cat")],
    routes: [router.parseRoute("#/p/7/similar?label=cat"), router.href("similar", { project: 7 }, { image: 12 })],
    key: keys.commandFor({ key: "y" }),
  };
}
"""


def test_similarity_helpers_in_the_page(browser: Any, live: Live) -> None:
    context = browser.new_context()
    live.closers.append(context.close)
    page = context.new_page()
    page.goto(live.url + "/#/login")
    out = page.evaluate(CHECKS)
    assert out["pct"] == ["93%", "100%", "0%"]
    assert out["score2"] == ["0.95", "0.93", "0.90"]  # rounded down: "≥ shown score" selects it
    assert out["above"] == [1, 2]
    assert out["aboveShown"] == [5]
    assert out["keep"] == [1, 3]
    assert out["threshold"] == [0.7, 0.77, 0.8]  # in the widest gap; one score; the default
    assert out["pending"] == ["cat", "dog"]
    assert out["notReady"] == [{"job": 4, "done": 120, "total": 500}, None, None, None]
    assert out["job"] == [{"done": 3, "total": 9, "finished": False, "failed": False},
                          {"done": 9, "total": 9, "finished": True, "failed": False},
                          {"done": 2, "total": 9, "finished": False, "failed": True}, None, None]
    assert out["text"] == ["Computing image features… 120/500", "Computing image features…"]
    assert out["body"] == {"items": [{"image": 7, "labels": ["cat"]}, {"image": 8, "labels": ["cat"]}]}
    assert out["summary"] == ["Added “cat” to 2 images.",
                              "Added “cat” to 1 image; 2 skipped (locked, already labeled)."]
    assert out["routes"][0] == {"name": "similar", "params": {"project": 7}, "query": {"label": "cat"}}
    assert out["routes"][1] == "#/p/7/similar?image=12"
    assert out["key"] == "accept-suggestion"


# --- the whole flow on a live server ---------------------------------------------------------

def stripes(path: Path, seed: int) -> Path:
    """Diagonal stripes, a different color and spacing per seed."""
    rng = np.random.default_rng(seed)
    img = np.full((180, 240, 3), 235, np.uint8)
    color = tuple(int(v) for v in rng.integers(0, 150, 3))
    step = int(rng.integers(12, 20))
    for x in range(-240, 480, step):
        cv2.line(img, (x, 0), (x + 120, 180), color, 4)
    assert cv2.imwrite(str(path), img)
    return path


def dots(path: Path, seed: int) -> Path:
    """Scattered round dots, a different color and layout per seed."""
    rng = np.random.default_rng(1000 + seed)
    img = np.full((180, 240, 3), 235, np.uint8)
    color = tuple(int(v) for v in rng.integers(0, 150, 3))
    for _ in range(30):
        cv2.circle(img, (int(rng.integers(0, 240)), int(rng.integers(0, 180))), 8, color, -1)
    assert cv2.imwrite(str(path), img)
    return path


async def _embedded(url: str, token: str, pid: int) -> None:
    """Ask for the project's image features and await the embed job's end, heard as the
    job's socket events (no polling)."""
    async with LabelhubClient(url, pid, token=token, timeout=30) as hub:
        job = (await hub.rest.request_embeddings(pid))["job"]
        status = job["status"]
        while status not in ("done", "failed", "cancelled"):
            event = await hub.next_event(JobEvent, within=180)
            assert isinstance(event, JobEvent)
            if event.job.id == job["id"]:
                status = event.job.status
        assert status == "done", job


def wait_embedded(live: Live, api: httpx.Client, pid: int) -> None:
    token = api.headers["Authorization"].removeprefix("Bearer ")
    # Playwright's sync API runs a loop in this thread: the SDK's runs in another.
    _in_thread(lambda: asyncio.run(_embedded(live.url, token, pid)))


def _seed(api: httpx.Client, tmp_path: Path) -> tuple[int, dict[str, int]]:
    """A project with 8 striped and 8 dotted images; 3 of each labeled by hand."""
    pid = api.post("/api/v1/projects", json={"name": "Textures"}).json()["id"]
    files = [stripes(tmp_path / f"stripes{i}.png", i) for i in range(8)]
    files += [dots(tmp_path / f"dots{i}.png", i) for i in range(8)]
    resp = api.post(f"/api/v1/projects/{pid}/images",
                    files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
    assert resp.status_code == 201, resp.text
    ids = {r["image"]["name"]: r["image"]["id"] for r in resp.json()["results"]}
    for name in ("stripes", "dots"):
        assert api.post(f"/api/v1/projects/{pid}/labels", json={"name": name}).status_code == 201
        resp = api.post(f"/api/v1/projects/{pid}/labels/apply", json={
            "op": {"kind": "add_label", "label": name}, "image_ids": [ids[f"{name}{i}.png"] for i in range(3)]})
        assert resp.status_code == 200, resp.text
    return pid, ids


def _labels(api: httpx.Client, image: int) -> dict[str, str]:
    item = api.get(f"/api/v1/images/{image}").json()
    return {label["name"]: label["source"] for label in item["labels"]}


def test_label_by_similarity(browser: Any, live: Live, settings: Settings, tmp_path: Path) -> None:
    api = live.api()
    pid, ids = _seed(api, tmp_path)
    page = login(browser, live)
    page.goto(f"{live.url}/#/p/{pid}")
    page.wait_for_selector(".tile >> nth=15")
    page.click("#similar-btn")
    page.wait_for_selector("#sim-label")
    page.select_option("#sim-label", "stripes")
    # No worker runs yet: the image features wait in a queued job, and the page says so.
    page.wait_for_selector("#features-progress")
    assert page.inner_text("#sim-status").startswith("Computing image features…")
    # A worker (a real `labelhub worker` process) computes them; the job's live events end the
    # wait and the list appears.
    with worker_process(settings, tmp_path):
        page.wait_for_selector(".sim-tile", timeout=180_000)
    shown = page.eval_on_selector_all(".sim-tile", "els => els.map((e) => [e.querySelector('.tile-name').textContent, Number(e.dataset.score)])")
    names = [n for n, _ in shown]
    assert all(not n.startswith(("stripes0", "stripes1", "stripes2")) for n in names)  # they carry it
    assert [s for _, s in shown] == sorted((s for _, s in shown), reverse=True)  # most similar first
    striped = [s for n, s in shown if n.startswith("stripes")]
    dotted = [s for n, s in shown if n.startswith("dots")]
    assert len(striped) == 5 and min(striped) > max(dotted), shown
    # Keyboard: arrows move between the checkboxes, Space ticks one.
    page.locator(".sim-check").first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    page.wait_for_selector(".sim-tile.selected")
    assert page.locator(".sim-tile.selected .tile-name").inner_text() == names[1]
    # Select everything scoring at least a value between the two groups, apply in one click.
    page.fill("#sim-threshold", f"{(min(striped) + max(dotted)) / 2:.4f}")
    page.click("#sim-select-above")
    assert page.inner_text("#sim-count") == f"{len(shown)} shown, 5 selected"
    assert page.inner_text("#sim-apply") == "Add “stripes” to 5 selected"
    page.click("#sim-apply")
    # The list refreshes: the striped images now carry the label and leave it.
    page.wait_for_function("![...document.querySelectorAll('.sim-tile .tile-name')].some((e) => e.textContent.startsWith('stripes'))")
    for i in range(3, 8):
        item = api.get(f"/api/v1/images/{ids[f'stripes{i}.png']}").json()
        assert {label["name"]: label["source"] for label in item["labels"]} == {"stripes": "auto"}
        assert item["auto_labeled"] is True
    assert _labels(api, ids["stripes0.png"]) == {"stripes": "manual"}
    # Live: a label added elsewhere (here over REST) takes its image off the list too.
    page.select_option("#sim-label", "dots")
    page.wait_for_selector(f".sim-tile[data-id='{ids['dots7.png']}']")
    api.post(f"/api/v1/projects/{pid}/labels/apply", json={"op": {"kind": "add_label", "label": "dots"}, "image_ids": [ids["dots7.png"]]})
    page.wait_for_selector(f".sim-tile[data-id='{ids['dots7.png']}']", state="detached")
    # The dashboard shows where labels came from and which images were auto-labeled.
    page.goto(f"{live.url}/#/p/{pid}?auto_labeled=true")
    page.wait_for_function("document.querySelectorAll('.tile').length === 5")
    assert page.locator(".tile .badge.auto").count() == 5
    assert page.locator(".tile .chip.auto").count() == 5
    assert page.locator(".tile .chip.auto .src").first.inner_text().lower() == "auto"
    assert "added automatically" in (page.locator(".tile .chip.auto").first.get_attribute("title") or "")
    # A label's menu leads to the same page for that label.
    page.click(".label-row[data-name=dots] .more")
    page.click(".label-row[data-name=dots] >> text=More like this")
    page.wait_for_selector(".sim-tile")
    assert page.eval_on_selector("#sim-label", "e => e.value") == "dots"
    assert page.js_errors == []


def test_suggestions_in_the_tool_and_find_similar(browser: Any, live: Live, settings: Settings,
                                                  tmp_path: Path) -> None:
    api = live.api()
    pid, ids = _seed(api, tmp_path)
    with worker_process(settings, tmp_path):
        wait_embedded(live, api, pid)
    page = login(browser, live)
    target = ids["dots5.png"]
    open_tool(page, live, pid, target)
    # The suggested labels for the open image, best first.
    page.wait_for_selector("#suggest-list li.top")
    assert page.get_attribute("#suggest-list li.top", "data-label") == "dots"
    top = float(page.get_attribute("#suggest-list li.top", "data-score") or 0)
    assert top > 0.5
    # Y accepts it: the label arrives live (through the op path) marked "auto".
    page.locator("#tool-canvas").focus()
    page.keyboard.press("y")
    page.wait_for_selector("#class-list li[data-name=dots][aria-selected=true] .badge.src-auto")
    assert _labels(api, target) == {"dots": "auto"}
    assert api.get(f"/api/v1/images/{target}").json()["auto_labeled"] is True
    # The accepted label leaves the suggestions.
    page.wait_for_function("!document.querySelector('#suggest-list li[data-label=dots]')")
    # "Find similar images" from a tile's menu on the dashboard: the most similar are striped.
    page.goto(f"{live.url}/#/p/{pid}")
    tile = page.locator(f".tile[data-id='{ids['stripes4.png']}']")
    tile.locator(".tile-menu-btn").click()
    tile.locator("[role=menuitem]", has_text="Find similar images").click()
    page.wait_for_selector(".sim-tile >> nth=4")
    first = page.eval_on_selector_all(".sim-tile .tile-name", "els => els.slice(0, 5).map((e) => e.textContent)")
    assert all(name.startswith("stripes") for name in first), first
    assert page.inner_text("#sim-source .tile-name") == "stripes4.png"
    assert page.js_errors == []
