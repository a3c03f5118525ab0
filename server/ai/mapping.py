"""The built-in ImageNet classifier's predictions, and what they mean in a project — pure.

The built-in model (EfficientNet-Lite0, ImageNet-1k) predicts ImageNet class names. A manager
maps class names to the project's labels (``{"Egyptian cat": "cat", "tabby": "cat"}``; a name
not yet a label becomes one). A prediction stores the top classes with their probabilities;
the mapping applies when predictions are read, so a mapping changed later is used at once:
a label's score is the sum of the probabilities of the classes mapped to it.

Staleness: a mapping entry remembers the label's id. When that label is renamed or deleted the
entry no longer matches the label set, and predictions using it are stale until the mapping is
set again — never silently applied under another name. The same check covers trained models,
whose versions remember the ids and names of the labels they were trained on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BUILTIN_NAME",
    "BUILTIN_THRESHOLD",
    "TOP_CLASSES",
    "mapped_labels",
    "matches",
    "top_classes",
]

BUILTIN_NAME = "imagenet"  # the built-in model's name in every project
TOP_CLASSES = 5  # classes kept per prediction
BUILTIN_THRESHOLD = 0.3  # a mapped label this probable is a confident prediction


def top_classes(probabilities: np.ndarray, names: Sequence[str], k: int = TOP_CLASSES
                ) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": names[i], "score": round(float(probabilities[i]), 4)} for i in order]


def matches(entries: Sequence[Mapping[str, Any]], current: Mapping[int, str]) -> bool:
    """Whether every ``{"id", "name"}`` still names the same label (``current``: id -> name)."""
    return all(current.get(int(e["id"])) == e["name"] for e in entries)


def mapped_labels(classes: Sequence[Mapping[str, Any]], mapping: Mapping[str, Mapping[str, Any]],
                  current: Mapping[int, str]) -> tuple[list[dict[str, Any]], bool]:
    """The project's labels for a prediction's classes under ``mapping`` (class name ->
    ``{"label", "label_id"}``), best first, and whether it is stale (a mapping entry it uses
    points at a label renamed or deleted since)."""
    scores: dict[str, float] = {}
    stale = False
    for item in classes:
        target = mapping.get(str(item["label"]))
        if target is None:
            continue
        if not matches([{"id": target["label_id"], "name": target["label"]}], current):
            stale = True
            continue
        scores[target["label"]] = scores.get(target["label"], 0.0) + float(item["score"])
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"label": n, "score": round(min(s, 1.0), 4)} for n, s in ranked], stale
