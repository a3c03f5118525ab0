"""server/_pg_writes.py: the JSON text of the write parameters."""

from __future__ import annotations

import json

from server._pg_writes import INSERT_COLUMNS, insert_columns, json_text


def test_json_text_reads_back_as_the_value_it_was_made_of() -> None:
    values = [{"kind": "batch", "ops": [{"kind": "create", "object": {
        "id": "é", "geometry": {"x": 1.0, "y": 1e-7, "w": 1e16, "h": 0.1}, "rpy": None,
        "attributes": {"n": -(2**63), "b": True, "s": "a\"\\\n"}}}]},
        [], {"big": 2**70}, ["\U0001F600"]]
    for value in values:
        assert json.loads(json_text(value)) == value
    assert json_text({"big": 2**70}) == '{"big": 1180591620717411303424}'  # the fallback


def test_insert_columns_are_one_text_list_per_column() -> None:
    inserts = [
        {"id": "a", "version": 1, "type": "bbox", "label": "car", "occluded": True, "z": -2,
         "geometry": {"x": 1.5, "y": 0.0, "w": 2.0, "h": 3.0}, "keypoints": [],
         "attributes": {}, "rpy": None, "source": "auto"},
        {"id": "b", "version": 7, "type": "polyline", "label": "", "occluded": False, "z": 0,
         "geometry": {"points": [[0, 0], [1, 1]]}, "keypoints": [[1, 2, 2]],
         "attributes": {"n": 2**70}, "rpy": {"roll": 1.0}},
    ]
    columns = insert_columns(inserts)
    assert len(columns) == len(INSERT_COLUMNS) and all(len(c) == 2 for c in columns)
    by_name = dict(zip(INSERT_COLUMNS, columns, strict=True))
    assert by_name["id"] == ["a", "b"] and by_name["source"] == ["auto", None]
    assert by_name["occluded"] == ["true", "false"] and by_name["z"] == ["-2", "0"]
    assert by_name["version"] == ["1", "7"] and by_name["rpy"][0] is None
    for name in ("geometry", "keypoints", "attributes"):
        assert [json.loads(t or "null") for t in by_name[name]] == [v[name] for v in inserts]
    assert json.loads(by_name["rpy"][1] or "null") == {"roll": 1.0}
    assert insert_columns([]) == []
