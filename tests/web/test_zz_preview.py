"""Scratch: preview the similarity UI with mocked AI endpoints (not committed)."""
from __future__ import annotations
import json, re
from pathlib import Path
from typing import Any
import cv2, numpy as np
import pytest
from tests.web.conftest import Live, login

def stripes(path, seed):
    rng = np.random.default_rng(seed); img = np.full((120, 160, 3), 235, np.uint8)
    step = int(rng.integers(8, 14)); c = tuple(int(v) for v in rng.integers(0, 160, 3))
    for x in range(0, 200, step): cv2.line(img, (x, 0), (x - 60, 120), c, 3)
    cv2.imwrite(str(path), img); return path

def dots(path, seed):
    rng = np.random.default_rng(seed); img = np.full((120, 160, 3), 235, np.uint8)
    c = tuple(int(v) for v in rng.integers(0, 160, 3))
    for _ in range(25): cv2.circle(img, (int(rng.integers(0, 160)), int(rng.integers(0, 120))), 6, c, -1)
    cv2.imwrite(str(path), img); return path

def test_preview(browser: Any, live: Live, tmp_path: Path) -> None:
    api = live.api()
    pid = api.post("/api/v1/projects", json={"name": "Textures"}).json()["id"]
    files = [stripes(tmp_path / f"stripes{i}.png", i) for i in range(6)] + [dots(tmp_path / f"dots{i}.png", i) for i in range(6)]
    ups = [("files", (f.name, f.read_bytes(), "image/png")) for f in files]
    res = api.post(f"/api/v1/projects/{pid}/images", files=ups).json()["results"]
    ids = {r["image"]["name"]: r["image"]["id"] for r in res}
    api.post(f"/api/v1/projects/{pid}/labels", json={"name": "stripes"})
    api.post(f"/api/v1/projects/{pid}/labels", json={"name": "dots"})
    api.post(f"/api/v1/projects/{pid}/labels/apply", json={"op": {"kind": "add_label", "label": "stripes"}, "image_ids": [ids["stripes0.png"], ids["stripes1.png"]]})
    api.post(f"/api/v1/projects/{pid}/labels/apply", json={"op": {"kind": "add_label", "label": "dots"}, "image_ids": [ids["dots0.png"]]})
    api.post(f"/api/v1/projects/{pid}/labels/apply", json={"op": {"kind": "add_label", "label": "stripes", "source": "auto"}, "image_ids": [ids["stripes2.png"]]})
    items = [{"image": ids[f"stripes{i}.png"], "name": f"stripes{i}.png", "similarity": 0.95 - 0.03 * i, "labels": []} for i in range(2, 6)]
    items += [{"image": ids[f"dots{i}.png"], "name": f"dots{i}.png", "similarity": 0.41 - 0.04 * i, "labels": ["dots"] if i == 0 else []} for i in range(6)]
    page = login(browser, live)
    def similar(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"items": items}))
    page.route(re.compile(r".*/similar(\?.*)?$"), similar)
    page.route(re.compile(r".*/suggestions$"), lambda r: r.fulfill(status=200, content_type="application/json", body=json.dumps(
        {"labeled_examples": 3, "items": [{"image": ids["stripes3.png"], "labels": [{"label": "stripes", "score": 0.91}, {"label": "dots", "score": 0.09}]}]})))
    page.goto(f"{live.url}/#/p/{pid}")
    page.wait_for_selector(".tile >> nth=11")
    page.locator(".tile").nth(2).locator(".tile-menu-btn").click()
    page.screenshot(path="/tmp/simweb/dash.png")
    page.click("#similar-btn")
    page.wait_for_selector(".sim-tile >> nth=3")
    page.click("#sim-select-above")
    page.screenshot(path="/tmp/simweb/similar.png")
    page.goto(f"{live.url}/#/p/{pid}/label/{ids['stripes3.png']}")
    page.wait_for_selector("#suggest-list")
    page.screenshot(path="/tmp/simweb/tool.png")
    page.route(re.compile(r".*/similar(\?.*)?$"), lambda r: r.fulfill(status=409, content_type="application/json", body=json.dumps(
        {"error": {"code": "not_ready", "message": "image features are being computed", "job": {"id": 4, "progress": {"done": 120, "total": 500}}}})))
    page.goto(f"{live.url}/#/p/{pid}/similar?image={ids['dots1.png']}")
    page.wait_for_selector("#features-progress")
    page.screenshot(path="/tmp/simweb/notready.png")
    assert page.js_errors == []
