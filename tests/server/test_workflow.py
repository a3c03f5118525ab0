"""The workflow rules as data: every transition, who may make it, the lock, the comment."""

from __future__ import annotations

import pytest

from server.permissions import PRESETS, Actor, Privilege
from server.workflow import Moved, Refused, State, decide, op, starts


def actor(role: str) -> Actor:
    return Actor(user_id=7, is_admin=False, privileges=int(PRESETS[role]))


@pytest.mark.parametrize(("state", "action", "role", "after"), [
    (State.NEW, "done", "labeler", State.DONE),
    (State.IN_PROGRESS, "done", "labeler", State.DONE),
    (State.REJECTED, "done", "labeler", State.DONE),
    (State.DONE, "accept", "supervisor", State.ACCEPTED),
    (State.DONE, "reject", "supervisor", State.REJECTED),
    (State.DONE, "reopen", "manager", State.IN_PROGRESS),
    (State.ACCEPTED, "reopen", "manager", State.IN_PROGRESS),
    (State.REJECTED, "reopen", "manager", State.IN_PROGRESS),
])
def test_allowed_moves(state: State, action: str, role: str, after: State) -> None:
    assert decide(state, action, actor(role), holds_lock=True, comment="fix the tail") == \
        Moved(state, after)


@pytest.mark.parametrize(("state", "action", "role", "holds", "comment", "code"), [
    (State.IN_PROGRESS, "done", "labeler", False, None, "lock_required"),
    (State.IN_PROGRESS, "done", "viewer", True, None, "forbidden"),
    (State.DONE, "accept", "labeler", True, None, "forbidden"),
    (State.DONE, "reject", "supervisor", False, "  ", "invalid"),
    (State.DONE, "reject", "supervisor", False, "x" * 2001, "invalid"),
    (State.DONE, "reopen", "supervisor", False, None, "forbidden"),
    (State.DONE, "done", "labeler", True, None, "conflict"),
    (State.ACCEPTED, "accept", "supervisor", False, None, "conflict"),
    (State.IN_PROGRESS, "reject", "supervisor", False, "why", "conflict"),
    (State.NEW, "reopen", "manager", False, None, "conflict"),
    (State.NEW, "launch", "manager", True, None, "invalid"),
])
def test_refused_moves(state: State, action: str, role: str, holds: bool, comment: str | None,
                       code: str) -> None:
    refused = decide(state, action, actor(role), holds_lock=holds, comment=comment)
    assert isinstance(refused, Refused) and refused.code == code and refused.message


def test_privilege_is_checked_before_the_state() -> None:
    # A labeler learns nothing about where the image stands from a refused accept.
    refused = decide(State.ACCEPTED, "accept", actor("labeler"), holds_lock=False)
    assert isinstance(refused, Refused) and refused.code == "forbidden"


def test_a_state_other_than_the_one_seen_is_a_conflict() -> None:
    # Reopening an accepted image is fine, unless the manager saw it as done a moment ago.
    assert isinstance(decide(State.ACCEPTED, "reopen", actor("manager"), holds_lock=False),
                      Moved)
    refused = decide(State.ACCEPTED, "reopen", actor("manager"), holds_lock=False,
                     expected=State.DONE)
    assert isinstance(refused, Refused) and refused.code == "conflict"
    assert "accepted now, not done" in refused.message


def test_admins_and_non_members() -> None:
    admin = Actor(user_id=1, is_admin=True, privileges=None)
    stranger = Actor(user_id=2, is_admin=False, privileges=None)
    assert decide(State.DONE, "reopen", admin, holds_lock=False) == Moved(State.DONE, State.IN_PROGRESS)
    refused = decide(State.DONE, "accept", stranger, holds_lock=False)
    assert isinstance(refused, Refused) and refused.code == "forbidden"
    assert Privilege.REVIEW in PRESETS["supervisor"]


def test_start_and_the_logged_op() -> None:
    assert starts(State.NEW) == Moved(State.NEW, State.IN_PROGRESS)
    assert starts(State.REJECTED) == Moved(State.REJECTED, State.IN_PROGRESS)
    assert starts(State.DONE) is None and starts(State.IN_PROGRESS) is None
    move = Moved(State.DONE, State.REJECTED)
    assert op(move, "reject", "tail missing") == {
        "kind": "state", "action": "reject", "from": "done", "to": "rejected",
        "comment": "tail missing"}
    assert "comment" not in op(move, "reject", None)
