"""The downloaded detector head (ONNX) gives the numbers the server's detector computes."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import onnxruntime as ort

from server.ai.detection import SIZE, STRIDE, cell_features
from server.ai.detector_export import detector_bundle
from server.ai.network import HEAD
from tests.ai.test_detection import detector


def test_the_onnx_head_matches_the_detector() -> None:
    rng = np.random.default_rng(3)
    d = detector(("cat", "dog"), dim=16 + HEAD)
    data = detector_bundle("boxes", 2, d, {"map50": 0.7, "images": 9, "boxes": 20})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["README.md", "detector_head.onnx", "labels.txt",
                                        "metrics.json"]
        assert z.read("labels.txt").decode() == "cat\ndog\n"
        assert json.loads(z.read("metrics.json"))["map50"] == 0.7
        assert "mAP@0.5: 0.7" in z.read("README.md").decode()
        session = ort.InferenceSession(z.read("detector_head.onnx"),
                                       providers=["CPUExecutionProvider"])
    h = w = SIZE // STRIDE
    map16 = rng.normal(size=(1, 16, h, w)).astype(np.float32)
    map32 = rng.normal(size=(1, HEAD, h // 2, w // 2)).astype(np.float32)
    scores, boxes = session.run(None, {"map16": map16, "map32": map32})
    cells = cell_features(map16[0], map32[0])
    z = cells @ d.coef.T + d.intercept
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.allclose(scores[0].reshape(3, -1).T, p, atol=1e-4)
    assert np.allclose(boxes[0].reshape(4, -1).T, cells @ d.reg_coef.T + d.reg_intercept,
                       atol=1e-3)
