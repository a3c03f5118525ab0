from __future__ import annotations

from server.undo import LogStep, stacks


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


def test_ops_that_changed_nothing_are_not_undoable() -> None:
    assert stacks([edit(1), LogStep(2, "edit", None, False)], 10) == ([1], [])
