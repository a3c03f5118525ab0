"""The default-label rules of classification labels: pure functions, no I/O.

An image's classification state is an ordered list of :class:`ImageLabelState` (order = the
order labels were added). The REST bulk endpoints (``server/labels.py``) and the hub's socket
ops both go through :func:`apply_label_op`, which returns the new state and the exact inverse.

Rules (each has a test in ``tests/server/test_classification.py``):

1. An image with labels has exactly one default label; an image without labels has none.
2. The first label added to an image becomes its default.
3. Adding a label the image already has makes it the default (its source is kept).
4. "Starring" a label (REST) makes it the default on every image that has it: that is
   ``set_default_label`` applied to each of those images.
5. Clicking a label on an image makes it the default (``set_default_label``); clicking a label
   the image does not have changes nothing.
6. Removing the default label promotes the earliest-added remaining label.

Ops on the wire::

    {"kind": "add_label", "label": "cat", "source": "manual"}   # source: manual | auto | sync
    {"kind": "remove_label", "label": "cat"}
    {"kind": "set_default_label", "label": "cat"}
    {"kind": "set_labels", "labels": [{"label": "cat", "is_default": true,
                                       "source": "manual", "user_id": 3}, ...]}

``set_labels`` replaces the whole state; it is what inverses use to restore a state exactly
(order, default, source and author included).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["manual", "auto", "sync"]
SOURCES: frozenset[str] = frozenset({"manual", "auto", "sync"})
MAX_LABEL_LEN = 200
MAX_LABELS_PER_IMAGE = 1_000
LABEL_OP_KINDS: frozenset[str] = frozenset({"add_label", "remove_label", "set_default_label", "set_labels"})


class ClassificationError(ValueError):
    """A malformed classification op. ``field`` names the bad value, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class ImageLabelState:
    """One classification label on one image."""

    label: str
    is_default: bool
    source: str = "manual"
    user_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "is_default": self.is_default, "source": self.source,
                "user_id": self.user_id}


@dataclass(frozen=True)
class AddLabel:
    label: str
    source: str = "manual"
    kind: Literal["add_label"] = field(default="add_label", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "source": self.source}


@dataclass(frozen=True)
class RemoveLabel:
    label: str
    kind: Literal["remove_label"] = field(default="remove_label", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label}


@dataclass(frozen=True)
class SetDefaultLabel:
    label: str
    kind: Literal["set_default_label"] = field(default="set_default_label", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label}


@dataclass(frozen=True)
class SetLabels:
    labels: tuple[ImageLabelState, ...]
    kind: Literal["set_labels"] = field(default="set_labels", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": [s.to_dict() for s in self.labels]}


LabelOp = AddLabel | RemoveLabel | SetDefaultLabel | SetLabels


# C0 and C1 controls and DEL, and lone surrogates (no Unicode character: unstorable as text).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def normalize_label(value: Any, where: str = "label") -> str:
    """A label name: a string, surrounding whitespace stripped, 1..200 characters."""
    if not isinstance(value, str):
        raise ClassificationError(where, "must be a string")
    name = value.strip()
    if not name:
        raise ClassificationError(where, "must not be empty")
    if len(name) > MAX_LABEL_LEN:
        raise ClassificationError(where, f"must be at most {MAX_LABEL_LEN} characters")
    if _CONTROL.search(name):
        raise ClassificationError(where, "must not contain control characters (tabs, line breaks, "
                                         "NUL...) or lone surrogates")
    return name


def _source(value: Any, where: str) -> str:
    if value is None:
        return "manual"
    if not isinstance(value, str) or value not in SOURCES:
        raise ClassificationError(where, f"must be one of {', '.join(sorted(SOURCES))}")
    return value


def _keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ClassificationError(f"{where}{extra[0]}", "unknown field")


def parse_state(items: Any, where: str = "labels") -> tuple[ImageLabelState, ...]:
    """Validate a whole state (list of dicts): unique names, exactly one default if non-empty."""
    if not isinstance(items, list):
        raise ClassificationError(where, "must be a list")
    if len(items) > MAX_LABELS_PER_IMAGE:
        raise ClassificationError(where, f"at most {MAX_LABELS_PER_IMAGE} labels per image")
    out: list[ImageLabelState] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        at = f"{where}.{i}"
        if not isinstance(item, Mapping):
            raise ClassificationError(at, "must be an object")
        _keys(item, {"label", "is_default", "source", "user_id"}, f"{at}.")
        name = normalize_label(item.get("label"), f"{at}.label")
        if name in seen:
            raise ClassificationError(f"{at}.label", f"duplicate label {name!r}")
        seen.add(name)
        is_default = item.get("is_default", False)
        if not isinstance(is_default, bool):
            raise ClassificationError(f"{at}.is_default", "must be a boolean")
        user_id = item.get("user_id")
        if user_id is not None and (isinstance(user_id, bool) or not isinstance(user_id, int)):
            raise ClassificationError(f"{at}.user_id", "must be an integer or null")
        out.append(ImageLabelState(name, is_default, _source(item.get("source"), f"{at}.source"), user_id))
    defaults = sum(s.is_default for s in out)
    if out and defaults != 1:
        raise ClassificationError(where, f"exactly one label must be the default, got {defaults}")
    return tuple(out)


def parse_label_op(data: Any) -> LabelOp:
    """Validate a classification op from the wire; raises :class:`ClassificationError`."""
    if not isinstance(data, Mapping):
        raise ClassificationError("op", "must be an object")
    kind = data.get("kind")
    if kind not in LABEL_OP_KINDS:
        raise ClassificationError("op.kind", f"must be one of {', '.join(sorted(LABEL_OP_KINDS))}")
    if kind == "add_label":
        _keys(data, {"kind", "label", "source"}, "op.")
        return AddLabel(normalize_label(data.get("label"), "op.label"), _source(data.get("source"), "op.source"))
    if kind == "set_labels":
        _keys(data, {"kind", "labels"}, "op.")
        return SetLabels(parse_state(data.get("labels"), "op.labels"))
    _keys(data, {"kind", "label"}, "op.")
    name = normalize_label(data.get("label"), "op.label")
    return RemoveLabel(name) if kind == "remove_label" else SetDefaultLabel(name)


def default_of(state: Sequence[ImageLabelState]) -> str | None:
    for s in state:
        if s.is_default:
            return s.label
    return None


def _with_default(state: Sequence[ImageLabelState], name: str) -> list[ImageLabelState]:
    return [ImageLabelState(s.label, s.label == name, s.source, s.user_id) for s in state]


def apply_label_op(
    state: Sequence[ImageLabelState], op: LabelOp, user_id: int | None
) -> tuple[list[ImageLabelState], LabelOp | None]:
    """Apply ``op`` to one image's labels: ``(new_state, inverse)``; inverse None = no change.

    Applying the inverse to the new state gives back ``state`` exactly (order, default flag,
    source and author), so undo never recomputes anything.
    """
    current = list(state)
    names = [s.label for s in current]
    if isinstance(op, AddLabel):
        if op.label in names:
            previous = default_of(current)
            if previous == op.label:
                return current, None
            # Rule 3: labelling again with a label the image has makes it the default.
            inverse: LabelOp = SetDefaultLabel(previous) if previous is not None else SetLabels(tuple(current))
            return _with_default(current, op.label), inverse
        # Rule 2: the first label becomes the default; later ones do not change it.
        added = ImageLabelState(op.label, not current, op.source, user_id)
        return [*current, added], RemoveLabel(op.label)
    if isinstance(op, RemoveLabel):
        if op.label not in names:
            return current, None
        kept = [s for s in current if s.label != op.label]
        if kept and default_of(kept) is None:
            # Rule 6: the earliest-added remaining label becomes the default.
            kept = _with_default(kept, kept[0].label)
        return kept, SetLabels(tuple(current))
    if isinstance(op, SetDefaultLabel):
        previous = default_of(current)
        if op.label not in names or previous == op.label:
            return current, None
        inverse = SetDefaultLabel(previous) if previous is not None else SetLabels(tuple(current))
        return _with_default(current, op.label), inverse
    new = list(op.labels)
    if new == current:
        return current, None
    return new, SetLabels(tuple(current))


def sync_label_ops(object_label: str, current_state: Sequence[ImageLabelState]) -> list[LabelOp]:
    """Ops that label synchronization adds when an object gets ``object_label``.

    Empty object labels and labels the image already has add nothing (sync never moves the
    default: only manual labelling does).
    """
    name = object_label.strip() if isinstance(object_label, str) else ""
    if not name or len(name) > MAX_LABEL_LEN or any(s.label == name for s in current_state):
        return []
    return [AddLabel(name, "sync")]


def check_state(state: Sequence[ImageLabelState]) -> None:
    """Assert the invariant (rule 1); raises :class:`ClassificationError` if broken."""
    parse_state([s.to_dict() for s in state])
