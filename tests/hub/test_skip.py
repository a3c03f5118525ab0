from __future__ import annotations

from server.hub.skip import Candidate, SkipRules, eligible, order


def test_order_walks_forward_and_back() -> None:
    assert order([5, 1, 3, 3], None, "next") == [1, 3, 5]
    assert order([5, 1, 3], 3, "next") == [5]
    assert order([5, 1, 3], 3, "previous") == [1]
    assert order([5, 1, 3], None, "previous") == [5, 3, 1]


def test_skip_rules() -> None:
    both = SkipRules(skip_labeled_by_others=True, skip_locked_by_others=True)
    none = SkipRules(skip_labeled_by_others=False, skip_locked_by_others=False)
    labeled = Candidate(1, locked_by_other=False, labeled_by_other=True)
    locked = Candidate(2, locked_by_other=True, labeled_by_other=False)
    clean = Candidate(3, locked_by_other=False, labeled_by_other=False)
    assert [eligible(c, both) for c in (labeled, locked, clean)] == [False, False, True]
    assert all(eligible(c, none) for c in (labeled, locked, clean))
