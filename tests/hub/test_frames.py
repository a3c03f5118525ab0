"""Reading a too-large frame's top-level type and id from its head."""

from __future__ import annotations

import json

from server.hub._frames import HEAD_CHARS, head_fields


def test_reads_the_top_level_fields_not_an_objects_id() -> None:
    frame = json.dumps({"type": "op", "id": "r7", "image": 3,
                        "op": {"kind": "create", "object": {"id": "inner", "type": "bbox"}}})
    assert head_fields(frame) == {"type": "op", "id": "r7"}
    assert head_fields('{"type": "op", "id": 12, "op": {') == {"type": "op", "id": 12}
    # An id after the op's objects is never confused with theirs.
    late = json.dumps({"op": {"kind": "batch", "ops": [{"object": {"id": "o1", "type": "x"}}]},
                       "type": "op", "id": "late"})
    assert head_fields(late) == {"type": "op", "id": "late"}


def test_only_the_head_is_read() -> None:
    cut = '{"type": "op", "op": {"note": "' + "x" * HEAD_CHARS + '"}, "id": "far"}'
    assert head_fields(cut) == {"type": "op"}
    assert head_fields('{"id": "a \\" quote", "type": "op"}') == {"id": 'a " quote', "type": "op"}
    assert head_fields("not json at all") == {}
    assert head_fields('[{"id": 1}]') == {}


def test_the_transport_cap_leaves_room_for_the_biggest_op() -> None:
    from server.cli import MAX_FRAME  # the CLI keeps its own copy (it starts without pydantic)
    from server.protocol import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, MAX_OP_BYTES

    assert MAX_FRAME == MAX_FRAME_BYTES > MAX_OP_BYTES > MAX_MESSAGE_BYTES
