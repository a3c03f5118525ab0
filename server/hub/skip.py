"""Which image comes next — pure ordering and skip rules over candidate facts. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Candidate:
    image_id: int
    locked_by_other: bool
    labeled_by_other: bool


@dataclass(frozen=True)
class SkipRules:
    skip_labeled_by_others: bool
    skip_locked_by_others: bool


def order(ids: Sequence[int], after: int | None, direction: Literal["next", "previous"]) -> list[int]:
    """Candidates in walking order: those after ``after`` (or before it, going back)."""
    ordered = sorted(set(ids), reverse=direction == "previous")
    if after is None:
        return ordered
    if direction == "next":
        return [i for i in ordered if i > after]
    return [i for i in ordered if i < after]


def eligible(candidate: Candidate, rules: SkipRules) -> bool:
    if rules.skip_labeled_by_others and candidate.labeled_by_other:
        return False
    return not (rules.skip_locked_by_others and candidate.locked_by_other)
