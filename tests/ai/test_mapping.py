"""The built-in model's classes mapped to a project's labels, and staleness (pure)."""

from __future__ import annotations

import numpy as np

from server.ai.mapping import mapped_labels, matches, top_classes


def test_top_classes_are_the_most_probable_first() -> None:
    p = np.array([0.1, 0.6, 0.05, 0.25], np.float32)
    assert top_classes(p, ["a", "b", "c", "d"], k=2) == [
        {"label": "b", "score": 0.6}, {"label": "d", "score": 0.25}]


def test_mapped_scores_add_up_and_unmapped_classes_drop_out() -> None:
    classes = [{"label": "Egyptian cat", "score": 0.6}, {"label": "tabby", "score": 0.2},
               {"label": "lynx", "score": 0.1}, {"label": "espresso", "score": 0.05}]
    mapping = {"Egyptian cat": {"label": "cat", "label_id": 1},
               "tabby": {"label": "cat", "label_id": 1},
               "espresso": {"label": "coffee", "label_id": 2}}
    labels, stale = mapped_labels(classes, mapping, {1: "cat", 2: "coffee"})
    assert labels == [{"label": "cat", "score": 0.8}, {"label": "coffee", "score": 0.05}]
    assert stale is False
    # "cat" renamed: the entries pointing at it are stale and give nothing.
    labels, stale = mapped_labels(classes, mapping, {1: "kitty", 2: "coffee"})
    assert labels == [{"label": "coffee", "score": 0.05}] and stale is True
    # An entry the prediction does not use does not make it stale.
    _, stale = mapped_labels(classes[:2], mapping, {1: "cat"})
    assert stale is False


def test_matches_by_id_and_name() -> None:
    assert matches([{"id": 1, "name": "a"}], {1: "a", 2: "b"})
    assert not matches([{"id": 1, "name": "a"}], {1: "b"})  # renamed
    assert not matches([{"id": 1, "name": "a"}], {2: "a"})  # deleted, another made with its name
