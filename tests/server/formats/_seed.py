"""A small project with every object type, seeded through the native JSON import."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.applications import Starlette

from server.geometry.rle import rle_encode
from tests.conftest import Api
from tests.server._rows import make_images

W, H = 64, 48


def bitmap() -> dict[str, Any]:
    m = np.zeros((H, W), dtype=bool)
    m[5:15, 30:50] = True
    m[20:30, 2:8] = True
    return rle_encode(m)


def seed_file() -> dict[str, Any]:
    return {"format": "labelhub", "version": 1,
            "labels": [{"name": "cat", "color": "#112233", "shortcut": 2}],
            "images": [
                {"name": "a.png", "labels": [{"label": "cat", "is_default": False, "source": "manual"},
                                             {"label": "dog", "is_default": True, "source": "auto"}],
                 "objects": [
                     {"id": "b1", "type": "bbox", "label": "cat", "geometry": {"x": 2.3, "y": 3.7, "w": 20.5, "h": 10.2},
                      "keypoints": [{"name": "eye", "x": 5.0, "y": 6.0, "visible": True}],
                      "attributes": {"color": "red", "n": 3}, "occluded": True},
                     {"id": "p1", "type": "polygon", "label": "dog",
                      "geometry": {"parts": [{"exterior": [[30.2, 20.1], [60.7, 22.4], [45.5, 44.9]]}]},
                      "rpy": {"roll": 1.0, "pitch": 2.0, "yaw": 3.0}},
                     {"id": "p2", "type": "polygon", "label": "dog",
                      "geometry": {"parts": [{"exterior": [[1, 1], [20, 1], [20, 20], [1, 20]],
                                              "holes": [[[5, 5], [10, 5], [10, 10], [5, 10]]]}]}},
                     {"id": "m1", "type": "bitmap", "label": "blob", "geometry": {"rle": bitmap()}},
                     {"id": "l1", "type": "polyline", "label": "road", "geometry": {"points": [[1, 1], [9, 9]]}},
                     {"id": "t1", "type": "point", "label": "dot", "geometry": {"x": 3, "y": 4}},
                 ]},
                {"name": "b.png", "labels": ["cat"], "objects": [
                    {"id": "b2", "type": "bbox", "label": "cat", "geometry": {"x": 40, "y": 30, "w": 10, "h": 8}}]},
                {"name": "c.png", "labels": [], "objects": []},
            ]}


async def seeded_project(admin: Api, app: Starlette, name: str = "Seed") -> int:
    resp = await admin.client.post("/api/v1/projects", json={"name": name})
    pid = int(resp.json()["id"])
    await make_images(app, pid, ["a.png", "b.png", "c.png"], W, H)
    r = await admin.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json=seed_file())
    assert r.status_code == 200, r.text
    return pid
