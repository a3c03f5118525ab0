"""Image workflow states and who may move them — pure rules, no I/O.

``new → in_progress → done → accepted | rejected``; a rejected image goes back to
``in_progress`` when a labeler opens it again, and a manager may reopen any finished image.

Who may do what:

- ``start`` (new or rejected → in progress): happens when a labeler is granted the image's lock.
- ``done``: the ``label`` privilege *and* the image's current lock. Marking done is a statement
  about the objects the holder is editing; without the lock someone else may be changing them.
- ``accept`` / ``reject``: the ``review`` privilege, no lock (a reviewer looks, and does not
  edit). A rejection needs a comment: the labeler has to know what to fix.
- ``reopen`` (done, accepted or rejected → in progress): a manager, i.e. ``manage_members``
  (the flag that tells the manager preset from a supervisor's).

:func:`decide` answers :class:`Moved` or :class:`Refused`; the caller writes the move and its
op-log row in one transaction, after reading the state under the project's seq lock, so of two
concurrent moves from one state exactly one is logged and the other is refused as a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from server.permissions import Actor, Privilege, allowed


class State(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


Action = Literal["start", "done", "accept", "reject", "reopen"]
#: What a client may ask for (``start`` follows from taking the lock).
REQUESTABLE: tuple[Action, ...] = ("done", "accept", "reject", "reopen")
MANAGE = Privilege.MANAGE_MEMBERS
COMMENT_MAX = 2000

#: From which states each action moves, and where to.
_MOVES: dict[str, tuple[frozenset[State], State]] = {
    "start": (frozenset({State.NEW, State.REJECTED}), State.IN_PROGRESS),
    "done": (frozenset({State.NEW, State.IN_PROGRESS, State.REJECTED}), State.DONE),
    "accept": (frozenset({State.DONE}), State.ACCEPTED),
    "reject": (frozenset({State.DONE}), State.REJECTED),
    "reopen": (frozenset({State.DONE, State.ACCEPTED, State.REJECTED}), State.IN_PROGRESS),
}
_NEEDS: dict[str, Privilege] = {"start": Privilege.LABEL, "done": Privilege.LABEL,
                                "accept": Privilege.REVIEW, "reject": Privilege.REVIEW,
                                "reopen": MANAGE}
#: States whose image is finished work (``next_image`` hands them out only when asked).
FINISHED = frozenset({State.DONE, State.ACCEPTED})


@dataclass(frozen=True)
class Moved:
    before: State
    after: State


@dataclass(frozen=True)
class Refused:
    """``code`` goes on the wire: ``forbidden``, ``lock_required``, ``invalid`` or ``conflict``."""

    code: str
    message: str


def decide(state: State, action: str, actor: Actor, *, holds_lock: bool,
           comment: str | None = None, expected: State | None = None) -> Moved | Refused:
    """May ``actor`` apply ``action`` to an image in ``state``, and what does it become?

    ``expected``: the state the asker saw. Reopening an accepted image is allowed, but a manager
    who reopens what they saw as done while a reviewer accepts it should hear that it moved on,
    not silently undo the acceptance: a different state is a conflict.
    Privilege is checked before the state so that a member without the right learns nothing
    about the image; the state is checked last, so a lost race reads as a conflict.
    """
    if action not in _MOVES:
        return Refused("invalid", f"unknown action {action!r}; one of {', '.join(_MOVES)}")
    needed = _NEEDS[action]
    if not allowed(actor, needed):
        return Refused("forbidden", f"'{action}' needs the '{(needed.name or '').lower()}' privilege")
    if action == "done" and not holds_lock:
        return Refused("lock_required", "open the image (take its lock) to mark it done")
    if action == "reject" and not (comment and comment.strip()):
        return Refused("invalid", "a rejection needs a comment saying what to fix")
    if comment is not None and len(comment) > COMMENT_MAX:
        return Refused("invalid", f"comment: at most {COMMENT_MAX} characters")
    sources, target = _MOVES[action]
    if expected is not None and state != expected:
        return Refused("conflict", f"the image is {_name(state)} now, not {_name(expected)}: "
                                   "someone changed it meanwhile")
    if state not in sources:
        return Refused("conflict", f"the image is {_name(state)}; "
                                   f"'{action}' needs it {_either(sources)}")
    return Moved(state, target)


def starts(state: State) -> Moved | None:
    """The move a lock granted to a labeler makes: a new or rejected image is now in progress."""
    sources, target = _MOVES["start"]
    return Moved(state, target) if state in sources else None


def _name(state: State) -> str:
    return state.value.replace("_", " ")


def _either(states: frozenset[State]) -> str:
    names = sorted(_name(s) for s in states)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def op(move: Moved, action: str, comment: str | None) -> dict[str, object]:
    """The op-log entry of a move (kind ``state``; no inverse: undo does not apply)."""
    entry: dict[str, object] = {"kind": "state", "action": action, "from": move.before.value,
                                "to": move.after.value}
    if comment:
        entry["comment"] = comment
    return entry


__all__ = ["COMMENT_MAX", "FINISHED", "MANAGE", "REQUESTABLE", "Action", "Moved", "Refused",
           "State", "decide", "op", "starts"]
