"""Training and measuring a detector on synthetic scenes (shapes pasted onto photos) over the
real network's feature maps; average precision on known cases; what too few boxes says."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks._ai_scenes import LABELS, scenes
from server.ai import detector_training as dt
from server.ai.detection import Detected, iou
from server.ai.model import Network
from server.ai.training import TrainingError


def test_detector_trains_measures_itself_and_finds_most_shapes(network: Network) -> None:
    data = scenes(28)
    maps = dt.image_maps(network, [img for img, _ in data])
    boxed = [dt.Boxed(320, 320, m, b) for m, (_, b) in zip(maps, data, strict=True)]
    detector, metrics = dt.train(boxed[:20], list(LABELS))
    found = hits = truth = 0
    for m, (_, boxes) in zip(maps[20:], data[20:], strict=True):
        got = dt.detect_image(detector, m)  # at the chosen threshold
        expected = [Detected(n, 1.0, x, y, w, h) for n, x, y, w, h in boxes]
        found += len(got)
        truth += len(expected)
        hits += sum(any(b.label == e.label and iou(b, e) >= 0.5 for b in got) for e in expected)
    assert truth >= 10
    assert hits / truth >= 0.6, (hits, truth)  # recall at IoU 0.5, right label
    assert hits / max(found, 1) >= 0.6, (hits, found)  # precision
    # The metrics: the classification shape, with mAP@0.5 as the quality.
    assert 0.5 <= metrics["map50"] <= 1.0 and metrics["folds"] == 3 and metrics["images"] == 20
    assert metrics["threshold"] == pytest.approx(detector.threshold, abs=1e-4)
    assert [x["label"] for x in metrics["labels"]] == list(LABELS)
    assert sum(x["examples"] for x in metrics["labels"]) == metrics["boxes"]
    assert all(x["precision"] is None or 0 <= x["precision"] <= 1 for x in metrics["labels"])
    curve = metrics["pr_curve"]
    assert curve and [p["threshold"] for p in curve] == sorted((p["threshold"] for p in curve),
                                                               reverse=True)
    learning = metrics["learning_curve"]
    assert [p["images"] for p in learning] == sorted(p["images"] for p in learning)
    assert learning[-1]["quality"] == metrics["map50"] and len(learning) == 3


def test_average_precision_of_known_rankings() -> None:
    assert dt.average_precision([(0.9, True), (0.8, True)], 2) == pytest.approx(1.0)
    assert dt.average_precision([(0.9, True), (0.8, False), (0.7, True)], 2) == pytest.approx(
        0.5 + 0.5 * 2 / 3)
    assert dt.average_precision([(0.9, True)], 4) == pytest.approx(0.25)  # 3 never found
    assert dt.average_precision([], 3) == 0.0


def test_too_few_boxes_say_what_is_missing() -> None:
    assert dt.shortfalls({}, 0) == [
        "training a detector needs boxes (bbox objects people drew); there are none"]
    assert dt.shortfalls({"cat": 2, "dog": 9}, 3) == [
        f"label 'cat' has 2 box(es); it needs {dt.MIN_BOXES}",
        f"3 image(s) have boxes; a detector needs {dt.MIN_IMAGES}"]
    assert dt.shortfalls({"cat": 5}, 4) == []  # one label is a detector too: "cat or not"
    with pytest.raises(TrainingError, match="label 'b' has 1 box"):
        dt.train([dt.Boxed(10, 10, [], [("a", 0, 0, 5, 5), ("b", 0, 0, 5, 5)])]
                 + [dt.Boxed(10, 10, [], [("a", 0, 0, 5, 5)])] * 3, ["a", "b"])


def test_image_maps_cover_every_view_and_mirror_when_asked(network: Network) -> None:
    small = np.zeros((200, 300, 3), np.uint8)
    large = np.zeros((700, 500, 3), np.uint8)
    maps = dt.image_maps(network, [small, large], flip=True)
    assert [len(m) for m in maps] == [2, 10]
    assert [v.flipped for v in maps[0]] == [False, True]
    assert maps[1][0].rect == (0, 0, 500, 700) and maps[1][0].map16.dtype == np.float16
    assert maps[1][0].cells().shape == (400, maps[1][0].map16.shape[0] + maps[1][0].map32.shape[0])
