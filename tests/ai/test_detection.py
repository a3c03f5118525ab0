"""The box detector prototype on synthetic scenes: shapes pasted onto photos, trained on 24
images, tested on 12 others, over the real network's feature maps."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data as skdata

from server.ai.detection import SIZE, Detected, cell_features, iou, nms, train_detector
from server.ai.model import Network

LABELS = ("circle", "square", "triangle")
PHOTOS = (skdata.astronaut, skdata.coffee, skdata.chelsea, skdata.rocket)


def scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, float, float, float, float]]]:
    photo = PHOTOS[int(rng.integers(len(PHOTOS)))]()
    h, w = photo.shape[:2]
    y0, x0 = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
    image = cv2.resize(photo[y0 : y0 + 2 * h // 3, x0 : x0 + 2 * w // 3], (SIZE, SIZE)).copy()
    boxes: list[tuple[str, float, float, float, float]] = []
    for _ in range(int(rng.integers(1, 4))):
        s = int(rng.integers(48, 100))
        x, y = int(rng.integers(0, SIZE - s)), int(rng.integers(0, SIZE - s))
        if any(abs(x - bx) < s and abs(y - by) < s for _, bx, by, _, _ in boxes):
            continue
        name = LABELS[int(rng.integers(3))]
        color = (255, 255, 255) if rng.random() < 0.5 else (20, 20, 20)
        if name == "circle":
            cv2.circle(image, (x + s // 2, y + s // 2), s // 2, color, -1)
        elif name == "square":
            cv2.rectangle(image, (x, y), (x + s - 1, y + s - 1), color, -1)
        else:
            pts = np.array([[x + s // 2, y], [x, y + s - 1], [x + s - 1, y + s - 1]], np.int32)
            cv2.fillPoly(image, [pts], color)
        boxes.append((name, float(x), float(y), float(s), float(s)))
    return image, boxes


def test_detector_finds_most_shapes(network: Network) -> None:
    rng = np.random.default_rng(0)
    scenes = [scene(rng) for _ in range(36)]
    map16, map32 = network.run([img for img, _ in scenes], ["map16", "map32"], size=SIZE)
    cells = [cell_features(map16[i], map32[i]) for i in range(len(scenes))]
    shape = map16.shape[2:]
    detector = train_detector(cells[:24], [shape] * 24, [b for _, b in scenes[:24]], LABELS)
    found = hits = truth = 0
    for i in range(24, 36):
        boxes = detector.detect(cells[i], *shape, SIZE, SIZE, threshold=0.5)
        expected = [Detected(n, 1.0, x, y, w, h) for n, x, y, w, h in scenes[i][1]]
        found += len(boxes)
        truth += len(expected)
        hits += sum(any(b.label == e.label and iou(b, e) >= 0.5 for b in boxes) for e in expected)
    assert truth >= 12
    assert hits / truth >= 0.5, (hits, truth)  # recall at IoU 0.5, right label
    assert hits / max(found, 1) >= 0.5, (hits, found)  # precision


def test_nms_keeps_the_best_of_overlapping_boxes_per_label() -> None:
    a = Detected("x", 0.9, 0, 0, 10, 10)
    b = Detected("x", 0.8, 1, 1, 10, 10)
    c = Detected("y", 0.7, 1, 1, 10, 10)
    d = Detected("x", 0.6, 50, 50, 10, 10)
    assert nms([b, d, a, c]) == [a, c, d]
    assert iou(a, a) == 1.0 and iou(a, d) == 0.0
