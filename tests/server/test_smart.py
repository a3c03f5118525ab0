"""Smart selection's request checks (server/_smart.py): sizes are compared with the image before
anything is decoded or allocated."""

from __future__ import annotations

import tracemalloc

from starlette.applications import Starlette

from server.geometry.rle import counts_to_string
from tests.conftest import Api, make_project
from tests.server._rows import make_images

HUGE = {"size": [16384, 16384], "counts": counts_to_string([16384 ** 2])}


async def test_a_previous_mask_of_the_wrong_size_is_refused_before_it_is_decoded(
        app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    [iid] = await make_images(app, pid, ["a.png"], width=64, height=48)
    url = f"/api/v1/images/{iid}/smart-select"
    tracemalloc.start()
    try:
        resp = await admin.client.post(url, json={"rect": [1, 1, 10, 10], "previous": HUGE})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "previous.size"
    assert peak < 50 * 1024 * 1024  # decoding it first took half a gigabyte


async def test_coordinates_must_be_finite_and_near_the_image(app: Starlette, admin: Api) -> None:
    pid = await make_project(admin)
    [iid] = await make_images(app, pid, ["a.png"], width=64, height=48)
    url = f"/api/v1/images/{iid}/smart-select"
    headers = {"Content-Type": "application/json"}
    for raw in (b'{"rect": [1, 1, 10, NaN]}', b'{"rect": [1, 1, 10, 1e999]}',
                b'{"rect": [1, 1, 10, 10], "foreground": [[[1e300, 2]]]}'):
        resp = await admin.client.post(url, content=raw, headers=headers)
        assert resp.status_code in (400, 422), (raw, resp.text)
