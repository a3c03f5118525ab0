"""The downloadable ONNX head computes what the server computes."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import onnxruntime as ort

from server.ai.export import bundle, head_onnx
from server.ai.heads import LinearHead


def test_onnx_head_matches_the_numpy_head_single_and_multi_label() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 7)).astype(np.float32)
    for multi in (False, True):
        head = LinearHead(("hog@1",), ("a", "b", "c"), multi,
                          rng.normal(size=(3, 7)).astype(np.float32),
                          rng.normal(size=3).astype(np.float32), 0.5)
        session = ort.InferenceSession(head_onnx(head, "t"), providers=["CPUExecutionProvider"])
        (scores,) = session.run(["scores"], {"features": x})
        assert np.allclose(scores, head.scores(x), atol=1e-6)


def test_bundle_holds_model_labels_metrics_readme() -> None:
    head = LinearHead(("hog@1", "lite0@1"), ("cat", "dog"), False,
                      np.zeros((2, 4), np.float32), np.zeros(2, np.float32), 0.7)
    with zipfile.ZipFile(io.BytesIO(bundle("pets", 3, head, {"accuracy": 0.9}))) as z:
        assert z.read("labels.txt") == b"cat\ndog\n"
        assert json.loads(z.read("metrics.json")) == {"accuracy": 0.9}
        readme = z.read("README.md").decode()
    assert "pets, version 3" in readme and "1/sqrt(2)" in readme and "0.700" in readme
