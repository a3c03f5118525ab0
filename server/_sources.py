"""Where an object came from (``objects.source``: ``manual``, ``auto`` or ``import``) on the edit
path. No I/O: the callers write what these functions decide.

The source is a column of the object's row, not a field of the geometry core's object, so ops
carry it beside the geometry (docs/protocol.md, "Object sources"). In a logged op, and therefore
in ``op`` events, undo and redo:

* every object a ``create`` or ``replace`` makes carries ``"source"``;
* ``"sources": {id: source}`` at the top of an op names the existing objects whose source it
  changed;
* ``{"kind": "set_source", "sources": {...}}`` changes nothing else (confirming model objects).

A person's edit of an ``auto`` object makes it ``manual``: it is theirs now and trains models.
What a client sends never sets a source (the fields are dropped); undo and redo replay the
stored op, whose sources are the server's, which is how undoing that edit makes the object
``auto`` again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server._object_store import OBJECT_VALUES, ObjectWrites
from server.models import utcnow

__all__ = ["SET_SOURCE", "SOURCES", "SourceError", "Sourced", "annotate", "set_sources", "source_after", "strip", "trusted"]

SOURCES = ("manual", "auto", "import")
SET_SOURCE = "set_source"
#: Origins that replay stored ops: the sources in them are the server's own.
_TRUSTED = ("undo", "redo")


class SourceError(ValueError):
    """Malformed ``sources`` in an op."""


@dataclass(frozen=True)
class Sourced:
    """A parsed op (``None``: a ``set_source``) with the sources its JSON named."""

    op: Any
    sources: dict[str, str]


def trusted(origin: str) -> bool:
    """Whether an op of this origin may set sources (else its sources are ignored)."""
    return origin in _TRUSTED


def strip(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` without source fields (the geometry core knows none) and the sources it named.
    Copies only what it changes: an op without sources comes back as it came."""
    given: dict[str, str] = {}
    if not isinstance(data, dict):
        return data, given
    out = data
    if "sources" in data:
        named = data["sources"]
        if not isinstance(named, dict) or not all(
                isinstance(k, str) and v in SOURCES for k, v in named.items()):
            raise SourceError(f"sources must map object ids to one of {', '.join(SOURCES)}")
        given.update(named)
        out = {k: v for k, v in data.items() if k != "sources"}
    return _strip_objects(out, given), given


def _strip_objects(data: Any, given: dict[str, str]) -> Any:
    if not isinstance(data, dict):
        return data
    kind = data.get("kind")
    if kind in ("create", "replace"):
        obj = data.get("object")
        if not (isinstance(obj, dict) and "source" in obj):
            return data
        if obj["source"] not in SOURCES:
            raise SourceError(f"an object's source must be one of {', '.join(SOURCES)}")
        if isinstance(obj.get("id"), str):
            given[obj["id"]] = obj["source"]
        return {**data, "object": {k: v for k, v in obj.items() if k != "source"}}
    if kind == "batch" and isinstance(data.get("ops"), list):
        ops = data["ops"]
        new = [_strip_objects(sub, given) for sub in ops]
        if any(a is not b for a, b in zip(new, ops, strict=True)):
            return {**data, "ops": new}
    return data


def source_after(before: str | None, given: str | None, origin: str, created: str) -> str:
    """An object's source after an op changed it. ``before``: its row's (``None``: the op made
    it); ``given``: what a replayed op says; ``created``: the source of objects this op makes."""
    if given is not None:
        return given
    if before is None:
        return created
    if before == "auto" and origin == "edit":
        return "manual"  # a person edited a model's object: it is theirs now
    return before


def annotate(op: dict[str, Any], inverse: dict[str, Any], after: Mapping[str, str],
             before: Mapping[str, str]) -> None:
    """Write the sources into a logged op and its inverse (in place): ``after`` by id for the
    objects the op left, ``before`` for the ones it found."""
    _put(op, after)
    _put(inverse, before)
    changed = {oid: s for oid, s in after.items() if oid in before and before[oid] != s}
    if changed:
        op["sources"] = changed
        inverse["sources"] = {oid: before[oid] for oid in changed}


def set_sources(rows: Mapping[str, Any], sources: Mapping[str, str], *, project_id: int,
                image_id: int, user_id: int
                ) -> tuple[dict[str, Any], dict[str, Any], set[str], ObjectWrites]:
    """A ``set_source`` op applied to the object ``rows`` it names (ids no longer there are left
    out): its dict, inverse, no new labels and the writes (each changed row a new version, so
    a connection holding the old one reads it again)."""
    writes = ObjectWrites(image_id=image_id, project_id=project_id, user_id=user_id,
                          source="manual", now=utcnow())
    after: dict[str, str] = {}
    before: dict[str, str] = {}
    for oid, wanted in sorted(sources.items()):
        row = rows.get(oid)
        if row is None or row.source == wanted:
            continue
        after[oid], before[oid] = wanted, row.source
        writes.updates.append({"id": oid, "version": row.version + 1, "source": wanted,
                               **{k: getattr(row, k) for k in OBJECT_VALUES}})
    return ({"kind": SET_SOURCE, "sources": after}, {"kind": SET_SOURCE, "sources": before},
            set(), writes)


def _put(op: Any, sources: Mapping[str, str]) -> None:
    if not isinstance(op, dict):
        return
    kind = op.get("kind")
    if kind in ("create", "replace"):
        obj = op["object"]
        found = sources.get(obj["id"])
        if found is not None:
            obj["source"] = found
    elif kind == "batch":
        for sub in op["ops"]:
            _put(sub, sources)
