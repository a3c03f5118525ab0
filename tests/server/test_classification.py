"""The default-label rules, one test per rule, plus exact inverses and op parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.classification import (
    LABEL_OP_KINDS,
    AddLabel,
    ClassificationError,
    ImageLabelState,
    LabelOp,
    RemoveLabel,
    SetDefaultLabel,
    SetLabels,
    apply_label_op,
    check_state,
    default_of,
    parse_label_op,
    sync_label_ops,
)


def run(state: list[ImageLabelState], *ops: LabelOp) -> list[ImageLabelState]:
    for op in ops:
        state, _inv = apply_label_op(state, op, 7)
    return state


def test_rule_image_with_labels_has_exactly_one_default() -> None:
    state = run([], AddLabel("cat"), AddLabel("dog"), AddLabel("bird"), RemoveLabel("cat"))
    assert sum(s.is_default for s in state) == 1
    assert run(state, RemoveLabel("dog"), RemoveLabel("bird")) == []
    with pytest.raises(ClassificationError):
        check_state([ImageLabelState("a", True), ImageLabelState("b", True)])


def test_rule_first_label_added_becomes_default() -> None:
    state = run([], AddLabel("cat"), AddLabel("dog"))
    assert default_of(state) == "cat"
    assert state[0] == ImageLabelState("cat", True, "manual", 7)


def test_rule_adding_a_label_the_image_has_makes_it_default() -> None:
    state = run([], AddLabel("cat"), AddLabel("dog", "auto"), AddLabel("dog"))
    assert default_of(state) == "dog"
    assert [s.source for s in state] == ["manual", "auto"]  # the source is kept


def test_rule_star_makes_label_default_on_every_image_that_has_it() -> None:
    # Starring is set_default_label applied to every image; the REST route picks the images.
    images = [run([], AddLabel("cat"), AddLabel("dog")), run([], AddLabel("dog"), AddLabel("cat")),
              run([], AddLabel("dog")), []]
    starred = [run(s, SetDefaultLabel("cat")) for s in images]
    assert [default_of(s) for s in starred] == ["cat", "cat", "dog", None]
    # Only the default moves: no image gains or loses a label.
    assert [[x.label for x in s] for s in starred] == [[x.label for x in s] for s in images]


def test_rule_clicking_a_label_makes_it_default() -> None:
    state = run([], AddLabel("cat"), AddLabel("dog"))
    new, inverse = apply_label_op(state, SetDefaultLabel("dog"), 1)
    assert default_of(new) == "dog" and inverse == SetDefaultLabel("cat")
    assert apply_label_op(new, SetDefaultLabel("dog"), 1) == (new, None)


def test_rule_removing_default_promotes_earliest_added_remaining() -> None:
    # Added c, a, b: the earliest-added remaining label wins, not the alphabetically first.
    state = run([], AddLabel("c"), AddLabel("a"), AddLabel("b"), SetDefaultLabel("b"))
    assert default_of(run(state, RemoveLabel("b"))) == "c"
    assert default_of(run(state, RemoveLabel("c"), RemoveLabel("b"))) == "a"
    # Removing a label that is not the default never moves the default.
    assert default_of(run(state, RemoveLabel("c"))) == "b"


def test_no_change_gives_no_inverse() -> None:
    state = run([], AddLabel("a"))
    assert apply_label_op(state, RemoveLabel("zzz"), 1)[1] is None
    assert apply_label_op(state, AddLabel("a"), 1)[1] is None
    assert apply_label_op(state, SetLabels(tuple(state)), 1)[1] is None


NAMES = st.sampled_from(["a", "b", "c", "d"])
OPS = st.one_of(
    st.builds(AddLabel, NAMES, st.sampled_from(["manual", "auto", "sync"])),
    st.builds(RemoveLabel, NAMES),
    st.builds(SetDefaultLabel, NAMES),
)


@given(st.lists(OPS, max_size=8), OPS)
def test_inverse_restores_state_exactly(prefix: list[LabelOp], op: LabelOp) -> None:
    state = run([], *prefix)
    new, inverse = apply_label_op(state, op, 3)
    check_state(new)
    if inverse is None:
        assert new == state
    else:
        restored, _ = apply_label_op(new, inverse, 99)
        assert restored == state
        # Inverses survive the wire.
        assert parse_label_op(inverse.to_dict()) == inverse


def test_parse_label_op_accepts_each_kind_and_round_trips() -> None:
    ops = [
        {"kind": "add_label", "label": " cat ", "source": "sync"},
        {"kind": "remove_label", "label": "cat"},
        {"kind": "set_default_label", "label": "cat"},
        {"kind": "set_labels", "labels": [{"label": "cat", "is_default": True, "source": "manual", "user_id": 2}]},
    ]
    parsed = [parse_label_op(o) for o in ops]
    assert {p.kind for p in parsed} == LABEL_OP_KINDS
    assert parsed[0] == AddLabel("cat", "sync")
    assert [parse_label_op(p.to_dict()) for p in parsed] == parsed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "op"),
        ({"kind": "nope"}, "op.kind"),
        ({"kind": "add_label"}, "op.label"),
        ({"kind": "add_label", "label": "  "}, "op.label"),
        ({"kind": "add_label", "label": "x" * 201}, "op.label"),
        ({"kind": "add_label", "label": "x", "source": "robot"}, "op.source"),
        ({"kind": "remove_label", "label": "x", "extra": 1}, "op.extra"),
        ({"kind": "set_labels", "labels": [{"label": "a", "is_default": False}]}, "op.labels"),
        ({"kind": "set_labels", "labels": [{"label": "a", "is_default": True},
                                           {"label": "a", "is_default": False}]}, "op.labels.1.label"),
    ],
)
def test_parse_label_op_rejects_bad_input_naming_the_field(data: object, field: str) -> None:
    with pytest.raises(ClassificationError) as err:
        parse_label_op(data)
    assert err.value.field == field and isinstance(err.value, ValueError)


def test_sync_label_ops_adds_missing_object_labels_only() -> None:
    state = run([], AddLabel("cat"))
    assert sync_label_ops("dog", state) == [AddLabel("dog", "sync")]
    assert sync_label_ops("cat", state) == []
    assert sync_label_ops("", state) == []
    synced = run(state, *sync_label_ops("dog", state))
    assert default_of(synced) == "cat" and synced[1].source == "sync"
