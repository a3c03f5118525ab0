"""Parsing a committed row heard on the bus (server/hub/_op_rows.py); what the edit statement
sends is checked on PostgreSQL in tests/hub/test_bus.py."""

from __future__ import annotations

import json

import pytest

from server._oplog import LoggedOp
from server.hub._op_rows import HeardRow, parse_row

ROW = {"t": "abc", "p": 3, "s": 9, "i": 7, "u": 2, "k": "move_box", "c": "c1", "o": "edit",
       "op": {"kind": "move_box", "object_id": "b", "x": 1.0, "y": 1.0, "w": 5.0, "h": 5.0}}


def test_a_row_parses_to_what_the_hub_fans_out() -> None:
    assert parse_row(json.dumps(ROW)) == HeardRow("abc", 3, LoggedOp(
        seq=9, image_id=7, user_id=2, kind="move_box", op=ROW["op"], client_op_id="c1",
        origin="edit"))
    # json_build_object's spacing, a null image and client op id (not from an edit)
    spaced = json.dumps({**ROW, "i": None, "c": None}, separators=(" , ", " : "))
    heard = parse_row(spaced)
    assert heard is not None and (heard.entry.image_id, heard.entry.client_op_id) == (None, None)


@pytest.mark.parametrize("payload", [
    "", "{", "[]", "null", json.dumps({**ROW, "s": "x"}), json.dumps({**ROW, "op": [1]}),
    json.dumps({k: v for k, v in ROW.items() if k != "p"}),
])
def test_anything_else_is_no_row(payload: str) -> None:
    assert parse_row(payload) is None  # its doorbell stands: the log is read

