"""Object sources beside the geometry in ops (server/_sources.py): stripped before parsing,
decided per object, written into the logged op and its inverse."""

from __future__ import annotations

import pytest

from server._sources import SourceError, annotate, source_after, strip, trusted


def test_strip_takes_the_sources_out_and_copies_only_what_it_changes() -> None:
    plain = {"kind": "batch", "ops": [{"kind": "create", "object": {"id": "a", "type": "point"}}]}
    assert strip(plain) == (plain, {}) and strip(plain)[0] is plain
    sent = {"kind": "batch", "sources": {"b": "auto"}, "ops": [
        {"kind": "create", "object": {"id": "a", "type": "point", "source": "import"}},
        {"kind": "move_box", "object_id": "b"}]}
    data, given = strip(sent)
    assert given == {"a": "import", "b": "auto"}
    assert data == {"kind": "batch", "ops": [{"kind": "create", "object": {"id": "a", "type": "point"}},
                                             {"kind": "move_box", "object_id": "b"}]}
    assert "source" in sent["ops"][0]["object"]  # type: ignore[index]  # the input is left alone
    for bad in ({"kind": "set_source", "sources": {"a": "robot"}}, {"kind": "x", "sources": []},
                {"kind": "create", "object": {"id": "a", "source": 3}}):
        with pytest.raises(SourceError):
            strip(bad)


def test_source_after_an_op() -> None:
    assert source_after(None, None, "edit", "manual") == "manual"  # drawn by a person
    assert source_after(None, None, "rest", "auto") == "auto"  # added from a prediction
    assert source_after("auto", None, "edit", "manual") == "manual"  # a person edited it
    assert source_after("auto", None, "rest", "manual") == "auto"
    assert source_after("import", None, "edit", "manual") == "import"
    assert source_after("manual", "auto", "undo", "manual") == "auto"  # replayed: as logged
    assert trusted("undo") and trusted("redo") and not trusted("edit") and not trusted("rest")


def test_annotate_writes_sources_into_the_op_and_its_inverse() -> None:
    op = {"kind": "batch", "ops": [
        {"kind": "create", "object": {"id": "new"}},
        {"kind": "replace", "object": {"id": "r"}},
        {"kind": "move_box", "object_id": "m"}]}
    inverse = {"kind": "batch", "ops": [
        {"kind": "move_box", "object_id": "m"},
        {"kind": "replace", "object": {"id": "r"}},
        {"kind": "delete", "object_id": "new"}]}
    annotate(op, inverse, {"new": "manual", "r": "manual", "m": "manual"},
             {"r": "auto", "m": "manual"})
    assert op["ops"][0]["object"] == {"id": "new", "source": "manual"}  # type: ignore[index]
    assert op["ops"][1]["object"] == {"id": "r", "source": "manual"}  # type: ignore[index]
    assert inverse["ops"][1]["object"] == {"id": "r", "source": "auto"}  # type: ignore[index]
    assert op["sources"] == {"r": "manual"} and inverse["sources"] == {"r": "auto"}
