"""Labeling settings: defaults, validation, project/user merge, privileges."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from server.db import transaction
from server.geometry.policy import Policy
from server.models import LabelObjectRow
from server.preferences import DEFAULTS, USER_KEYS, LabelingSettings, geometry_policy, merge
from tests.conftest import Api, UserFactory, add_member, make_project
from tests.hub._ws import WsClient
from tests.hub.conftest import LiveServer
from tests.server._rows import make_images


def test_merge_layers_in_order_and_ignores_stale_values() -> None:
    merged = merge({"synchronize_labels": True, "undo_history_length": 5},
                   {"undo_history_length": 9999, "nonsense": 1}, {"undo_history_length": 7})
    assert merged.synchronize_labels is True and merged.undo_history_length == 7
    assert merge() == DEFAULTS and USER_KEYS <= set(LabelingSettings.model_fields)


def test_settings_feed_the_geometry_policy() -> None:
    s = merge({"fixed_bbox_aspect_ratio": 2.0, "simplify_polygons": True, "simplify_tolerance": 3,
               "allow_labeling_outside_image": True})
    policy = Policy.from_settings(s.model_dump(), 100, 50)
    assert (policy.bbox_aspect, policy.simplify_tolerance, policy.allow_outside) == (2.0, 3.0, True)


async def test_project_settings_defaults_patch_and_validation(admin: Api) -> None:
    pid = await make_project(admin)
    url = f"/api/v1/projects/{pid}/settings"
    got = (await admin.client.get(url)).json()
    assert got["project"] == {**DEFAULTS.model_dump(), "label_shortcuts": {}}
    resp = await admin.client.patch(url, json={"synchronize_labels": True, "fixed_bbox_aspect_ratio": 1.5})
    assert resp.status_code == 200
    assert resp.json()["project"]["synchronize_labels"] is True
    for bad, field in (({"undo_history_length": 0}, "undo_history_length"),
                       ({"fixed_bbox_aspect_ratio": -1}, "fixed_bbox_aspect_ratio"),
                       ({"warp_speed": True}, "warp_speed"),
                       ({"synchronize_labels": "maybe"}, "synchronize_labels")):
        r = await admin.client.patch(url, json=bad)
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field, r.text
    assert (await admin.client.get(url)).json()["project"]["undo_history_length"] == 100
    # null resets a key to its default.
    reset = await admin.client.patch(url, json={"synchronize_labels": None})
    assert reset.json()["project"]["synchronize_labels"] is False


async def test_label_shortcuts_setting_maps_digits_to_labels(admin: Api) -> None:
    pid = await make_project(admin)
    await admin.client.post(f"/api/v1/projects/{pid}/labels", json={"name": "cat"})
    url = f"/api/v1/projects/{pid}/settings"
    resp = await admin.client.patch(url, json={"label_shortcuts": {"1": "cat"}})
    assert resp.json()["project"]["label_shortcuts"] == {"1": "cat"}
    bad = await admin.client.patch(url, json={"label_shortcuts": {"0": "cat"}})
    assert bad.status_code == 422
    missing = await admin.client.patch(url, json={"label_shortcuts": {"2": "nope"}})
    assert missing.status_code == 422
    assert (await admin.client.get(url)).json()["project"]["label_shortcuts"] == {"1": "cat"}


async def test_project_settings_need_manage_labels(admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    labeler = await users("lab")
    await add_member(admin, pid, labeler)
    url = f"/api/v1/projects/{pid}/settings"
    assert (await labeler.client.get(url)).status_code == 200
    assert (await labeler.client.patch(url, json={"synchronize_labels": True})).status_code == 403


async def test_user_settings_override_project_defaults(admin: Api, users: UserFactory) -> None:
    pid = await make_project(admin)
    alice = await users("alice")
    await add_member(admin, pid, alice)
    await admin.client.patch(f"/api/v1/projects/{pid}/settings",
                             json={"skip_other_users_images": True, "use_previous_label_name": False})
    # Global per-user value, then a per-project one on top.
    r1 = await alice.client.patch("/api/v1/me/settings", json={"use_previous_label_name": True,
                                                               "disable_smoothing_when_zoomed": True})
    assert r1.status_code == 200 and r1.json()["user"]["disable_smoothing_when_zoomed"] is True
    r2 = await alice.client.patch("/api/v1/me/settings", params={"project": pid},
                                  json={"skip_other_users_images": False})
    eff = r2.json()["effective"]
    assert eff["skip_other_users_images"] is False and eff["use_previous_label_name"] is True
    proj = (await alice.client.get(f"/api/v1/projects/{pid}/settings")).json()
    assert proj["project"]["skip_other_users_images"] is True
    assert proj["effective"]["skip_other_users_images"] is False
    # Project-wide keys are refused on the user endpoint.
    bad = await alice.client.patch("/api/v1/me/settings", json={"synchronize_labels": True})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "synchronize_labels"
    other = await make_project(admin, "Other")
    hidden = await alice.client.get("/api/v1/me/settings", params={"project": other})
    assert hidden.status_code == 404


async def test_the_hub_enforces_undo_depth_and_geometry_settings(
    admin: Api, app: Starlette, live_server: LiveServer
) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"], 64, 48)
    url = f"/api/v1/projects/{pid}/settings"
    await admin.client.patch(url, json={"undo_history_length": 2})

    async def session() -> tuple[WsClient, int]:
        ws = await live_server.connect(admin)
        await ws.request("hello", project=pid)
        return ws, int((await ws.request("open_image", image=img))["lock"]["token"])

    def box(oid: str, x: float) -> dict[str, Any]:
        return {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "",
                                             "geometry": {"x": x, "y": 2, "w": 10, "h": 10}}}

    ws, token = await session()
    try:
        for i in range(3):
            ack = await ws.request("op", image=img, token=token, client_op_id=f"b{i}", op=box(f"b{i}", 2 + i))
            assert ack["type"] == "ack", ack
        undos = [(await ws.request("undo", image=img, token=token)) for _ in range(3)]
        assert [u["type"] for u in undos] == ["ack", "ack", "error"]
        assert undos[2]["code"] == "nothing_to_undo"
        # Shapes off the image are refused by default (allow outside / fit are off).
        off = await ws.request("op", image=img, token=token, client_op_id="off1", op=box("off", 60))
        assert off["type"] == "error" and off["code"] == "invalid_op"
    finally:
        await ws.close()
    await admin.client.patch(url, json={"fit_labels_to_image": True})
    ws, token = await session()
    try:
        fitted = await ws.request("op", image=img, token=token, client_op_id="off2", op=box("off", 60))
        assert fitted["type"] == "ack", fitted
    finally:
        await ws.close()
    async with transaction(app.state.sessions) as s:
        row = await s.get(LabelObjectRow, (img, "off"))
        assert row is not None and row.geometry["x"] + row.geometry["w"] <= 64


def test_geometry_policy_follows_the_settings_object_it_is_given() -> None:
    loose = merge({"allow_labeling_outside_image": True, "fixed_bbox_aspect_ratio": 2.0})
    strict = merge({"allow_labeling_outside_image": False})
    first = geometry_policy(loose, 640, 480)
    assert (first.allow_outside, first.bbox_aspect, first.image_width) == (True, 2.0, 640)
    assert geometry_policy(loose, 640, 480) is first  # kept for the same settings and size
    assert geometry_policy(loose, 320, 240).image_width == 320
    assert geometry_policy(strict, 640, 480).allow_outside is False


async def test_a_project_number_past_any_id_is_not_found_not_a_500(admin: Api) -> None:
    for value in ("99999999999999999999", "2147483648", "0", "-1"):
        for method in ("get", "patch"):
            kwargs = {"json": {"use_previous_label_name": True}} if method == "patch" else {}
            resp = await getattr(admin.client, method)("/api/v1/me/settings", params={"project": value}, **kwargs)
            assert resp.status_code == 404, (value, method, resp.text)
    assert (await admin.client.get("/api/v1/me/settings", params={"project": "x"})).status_code == 422
