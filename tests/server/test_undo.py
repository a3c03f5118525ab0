from __future__ import annotations

from starlette.applications import Starlette

from server._label_store import read_image_labels
from server.undo import LogStep, follow_renames, stacks
from tests.conftest import Api, make_project
from tests.hub.conftest import LiveServer
from tests.server._rows import make_images


def edit(seq: int) -> LogStep:
    return LogStep(seq, "edit", None, True)


def test_undo_redo_stacks() -> None:
    steps = [edit(1), edit(2), LogStep(3, "undo", 2, True)]
    assert stacks(steps, 10) == ([1], [2])
    steps.append(LogStep(4, "redo", 2, True))
    assert stacks(steps, 10) == ([1, 4], [])
    steps.append(LogStep(5, "undo", 4, True))
    assert stacks(steps, 10) == ([1], [4])


def test_a_new_edit_clears_redo_and_depth_is_bounded() -> None:
    steps = [edit(1), edit(2), LogStep(3, "undo", 2, True), edit(4)]
    assert stacks(steps, 10) == ([1, 4], [])
    assert stacks([edit(i) for i in range(1, 8)], 3) == ([5, 6, 7], [])


def test_changes_made_over_rest_are_undone_like_edits() -> None:
    # Labels applied from the dashboard or accepted suggestions (origin "rest") are the user's
    # own changes of the image: the tool's undo reverts them in order with the edits.
    rest = LogStep(2, "rest", None, True)
    assert stacks([edit(1), rest], 10) == ([1, 2], [])
    assert stacks([edit(1), rest, LogStep(3, "undo", 2, True)], 10) == ([1], [2])


def test_ops_that_changed_nothing_are_not_undoable() -> None:
    assert stacks([edit(1), LogStep(2, "edit", None, False)], 10) == ([1], [])


def test_follow_renames_carries_label_names_through_later_renames() -> None:
    renames = [("cat", "kitty"), ("kitty", "feline"), ("dog", "hound")]
    assert follow_renames({"kind": "remove_label", "label": "cat"}, renames) == {
        "kind": "remove_label", "label": "feline"}
    state = {"kind": "set_labels", "labels": [{"label": "dog", "is_default": True}, {"label": "owl"}]}
    assert follow_renames(state, renames)["labels"] == [{"label": "hound", "is_default": True}, {"label": "owl"}]
    batch = {"kind": "batch", "ops": [
        {"kind": "create", "object": {"id": "a", "label": "cat", "attributes": {"label": "cat"}}},
        {"kind": "set_label", "object_id": "b", "label": None}]}
    out = follow_renames(batch, renames)
    assert out["ops"][0]["object"] == {"id": "a", "label": "feline", "attributes": {"label": "cat"}}
    assert out["ops"][1]["label"] is None
    assert follow_renames(batch, []) is batch


async def test_undo_after_a_rename_acts_on_the_new_name(admin: Api, app: Starlette, live_server: LiveServer) -> None:
    pid = await make_project(admin)
    [img] = await make_images(app, pid, ["a.png"])
    ws = await live_server.connect(admin)
    try:
        await ws.request("hello", project=pid)
        token = (await ws.request("open_image", image=img))["lock"]["token"]
        added = await ws.request("op", image=img, token=token, client_op_id="l1",
                                 op={"kind": "add_label", "label": "cat"})
        assert added["type"] == "ack", added
        cat = (await admin.client.get(f"/api/v1/projects/{pid}/labels")).json()["labels"][0]
        renamed = await admin.client.patch(f"/api/v1/projects/{pid}/labels/{cat['id']}", json={"name": "kitty"})
        assert renamed.status_code == 200, renamed.text
        undone = await ws.request("undo", image=img, token=token)
        assert undone["type"] == "ack" and undone["op"]["label"] == "kitty", undone
        async with app.state.sessions() as session:
            assert list(await read_image_labels(session, img)) == []
    finally:
        await ws.close()
