"""server/_pg_writes.py: the JSON text of the write parameters."""

from __future__ import annotations

import json

from server._pg_writes import json_text


def test_json_text_reads_back_as_the_value_it_was_made_of() -> None:
    values = [{"kind": "batch", "ops": [{"kind": "create", "object": {
        "id": "é", "geometry": {"x": 1.0, "y": 1e-7, "w": 1e16, "h": 0.1}, "rpy": None,
        "attributes": {"n": -(2**63), "b": True, "s": "a\"\\\n"}}}]},
        [], {"big": 2**70}, ["\U0001F600"]]
    for value in values:
        assert json.loads(json_text(value)) == value
    assert json_text({"big": 2**70}) == '{"big": 1180591620717411303424}'  # the fallback
