"""A detector from the browser (issue 14, "Done when"): on a few small scenes with boxes people
drew, train a detector from the models page, predict unboxed images, review and add its boxes;
the images are marked auto-labeled, the tool shows the boxes as a model's until the person
confirms them, and then they count: with more scenes people boxed meanwhile, a new version
trains on more images and the models page shows its mAP@0.5 clearly above the first's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks._ai_scenes import Box, scenes
from server.settings import Settings
from tests.ai._digits import png
from tests.jobs.conftest import worker_process
from tests.web._models import compared
from tests.web._tool import open_tool
from tests.web.conftest import Live, login

pytestmark = pytest.mark.browser
LONG = 180_000  # ms: jobs run in a worker process on a loaded machine
# 320-px scenes (benchmarks/_ai_scenes.py, seed 5): v1 learns from the first BOXED, predicts the
# next PREDICTED; people then box MORE after those, and v2 learns from all of them. Measured
# (training is seeded: fixed folds and samples): v1's cross-validated mAP@0.5 0.53 on 7 images,
# v2's 0.94 on 19; with other training seeds v2 gained 16 to 80 points (8 seeds).
BOXED, PREDICTED, MORE = 7, 2, 10
SCENES = BOXED + PREDICTED + MORE
MARGIN = 20  # points of mAP@0.5 v2 gains at least (measured +41)


def _box(api: httpx.Client, pid: int, data: Sequence[tuple[Any, Sequence[Box]]], rows: range) -> None:
    """People's boxes on the scenes ``rows`` (the native import, as a team moving in would)."""
    names = sorted({b[0] for _, boxes in data for b in boxes})
    resp = api.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json={
        "format": "labelhub", "version": 1, "labels": [{"name": n} for n in names],
        "images": [{"name": f"s{i:02d}.png", "objects": [
            {"id": f"h{k}", "type": "bbox", "label": n, "geometry": {"x": x, "y": y, "w": w, "h": h}}
            for k, (n, x, y, w, h) in enumerate(data[i][1])]} for i in rows]})
    assert resp.status_code == 200, resp.text


def _seed(api: httpx.Client) -> tuple[int, list[int], list[tuple[Any, list[Box]]]]:
    """The scenes uploaded (their embed jobs cancelled: the detector computes its own maps) and
    the first ``BOXED`` boxed by people."""
    pid = api.post("/api/v1/projects", json={"name": "Shapes"}).json()["id"]
    data = scenes(SCENES, 5)
    resp = api.post(f"/api/v1/projects/{pid}/images", files=[
        ("files", (f"s{i:02d}.png", png(img[:, :, ::-1]), "image/png")) for i, (img, _) in enumerate(data)])
    assert resp.status_code == 201, resp.text
    ids = {r["image"]["name"]: r["image"]["id"] for r in resp.json()["results"]}
    for job in api.get(f"/api/v1/projects/{pid}/jobs", params={"status": "queued"}).json()["jobs"]:
        assert api.post(f"/api/v1/projects/{pid}/jobs/{job['id']}/cancel").status_code == 200
    _box(api, pid, data, range(BOXED))
    return pid, [ids[f"s{i:02d}.png"] for i in range(SCENES)], data


def _status(page: Any, text: str) -> None:
    page.wait_for_function(f"document.querySelector('#pred-status-line')?.textContent.includes({text!r})", timeout=LONG)


def test_a_detector_trained_reviewed_and_trained_again_in_the_browser(
        browser: Any, live: Live, settings: Settings, tmp_path: Path) -> None:
    api = live.api()
    pid, ids, data = _seed(api)
    unboxed = ids[BOXED : BOXED + PREDICTED]
    page = login(browser, live)
    with worker_process(settings, tmp_path):
        # 1. Train a detector on the people's boxes, from the models page.
        page.goto(f"{live.url}/#/p/{pid}/models")
        page.click("#train-new")
        page.select_option("#train-task", "detection")
        page.fill("#train-name", "shapes")
        page.click("#train-start")
        first = page.locator(".model[data-model=shapes] tr[data-version='1']")
        first.wait_for(timeout=LONG)
        assert first.locator("td").nth(1).inner_text() == str(BOXED)  # trained on the boxed images
        assert "mAP@0.5" in page.inner_text(".model[data-model=shapes]")

        # 2. Predict the unboxed scenes with it; review: its boxes drawn dashed, checked above
        # the threshold; add them all.
        page.goto(f"{live.url}/#/p/{pid}/predictions?model=shapes&ids={','.join(map(str, unboxed))}")
        page.wait_for_selector("#pred-scope")
        page.click("#pred-run")
        _status(page, f"Predicted {len(unboxed)} image(s)")
        assert page.locator(".pred-card").count() == len(unboxed)
        page.locator(".pred-card .pred-box").first.wait_for()  # drawn once the image has loaded
        assert page.locator(".pred-card .pred-box rect[stroke-dasharray]").count() > 0
        checked = page.locator(".pred-card .pred-object input:checked").count()
        assert checked > 0
        page.click("#pred-select-all")
        page.click("#pred-add")
        _status(page, "Added")
        added = {i: api.get(f"/api/v1/projects/{pid}/images/{i}/objects").json()["objects"] for i in unboxed}
        assert sum(len(v) for v in added.values()) == checked
        assert {o["source"] for v in added.values() for o in v} == {"auto"}

        # 3. The dashboard's auto-labeled filter shows them; in the tool the boxes are the model's
        # ("model", dashed) until the person confirms them.
        marked = [i for i in unboxed if added[i]]
        page.goto(f"{live.url}/#/p/{pid}?auto_labeled=true")
        page.wait_for_function(f"document.querySelectorAll('.tile').length === {len(marked)}")
        for image in marked:
            open_tool(page, live, pid, image)
            page.wait_for_selector("#object-list li[data-id] .model-badge")
            assert page.locator("#object-list li[data-id] .model-badge").count() == len(added[image])
            page.keyboard.press("q")  # Confirm model labels
            page.wait_for_selector("#object-list li[data-id] .model-badge", state="detached")
            page.wait_for_selector("#confirm-auto", state="detached")
        sources = {o["source"] for i in marked
                   for o in api.get(f"/api/v1/projects/{pid}/images/{i}/objects").json()["objects"]}
        assert sources == {"manual"}

        # 4. Reviewed boxes are the person's; people boxed more scenes meanwhile: the next
        # version trains on more images, and the models page shows it is better.
        _box(api, pid, data, range(BOXED + PREDICTED, SCENES))
        page.goto(f"{live.url}/#/p/{pid}/models")
        page.click(".model[data-model=shapes] .retrain-btn")
        second = page.locator(".model[data-model=shapes] tr[data-version='2']")
        second.wait_for(timeout=LONG)
        assert int(second.locator("td").nth(1).inner_text()) == BOXED + len(marked) + MORE
        page.check(".model[data-model=shapes] tr[data-version='1'] input.compare")
        box = page.locator(".model[data-model=shapes] .compare-box")
        box.wait_for()
        text = box.inner_text()
        v1, v2, change = compared(text, "mAP@0.5")
        assert v2 - v1 == change >= MARGIN, text
        assert f"v2 is better: mAP@0.5 +{change} points" in text
        assert second.locator("td.change .better").inner_text() == f"+{change} points"
    assert page.js_errors == []
