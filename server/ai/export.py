"""A trained model version as a ZIP to take elsewhere: the linear head as ONNX, its labels, its
metrics and a README saying what goes in. Pure (builds bytes; the ``onnx`` package writes the
graph, as it does for the network in server/ai/network.py)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from server.ai._onnx import onnx
from server.ai.heads import LinearHead

__all__ = ["bundle", "head_onnx"]

OPSET = 17


def head_onnx(head: LinearHead, name: str) -> bytes:
    """``features (n, dim) float32 -> scores (n, labels)``: Gemm, then Softmax (single-label)
    or Sigmoid (multi-label): the same numbers as ``LinearHead.scores``."""
    dim, n_labels = head.coef.shape[1], head.coef.shape[0]
    nodes = [
        onnx.helper.make_node("Gemm", ["features", "coef", "intercept"], ["logits"], transB=1),
        onnx.helper.make_node("Sigmoid", ["logits"], ["scores"]) if head.multi_label
        else onnx.helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = onnx.helper.make_graph(
        nodes, name,
        [onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["n", dim])],
        [onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["n", n_labels])],
        initializer=[onnx.numpy_helper.from_array(np.asarray(head.coef, np.float32), "coef"),
                     onnx.numpy_helper.from_array(np.asarray(head.intercept, np.float32), "intercept")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                              producer_name="labelhub")
    onnx.checker.check_model(model)
    return model.SerializeToString()


_README = """# {name}, version {version}

A {kind} image classifier trained in Labelhub: logistic regression over image features.

* `model.onnx`: input `features` (n x {dim}, float32), output `scores` (n x {labels}, in [0, 1],
  {activation}), label order as in `labels.txt`.
* `labels.txt`: one label per line; `metrics.json`: cross-validated accuracy, per-label
  precision/recall, the precision-recall curve and the chosen threshold ({threshold:.3f}: labels
  scoring at least this are confident predictions).

The input is the features {features} of an image, each L2-normalised, concatenated in that
order and multiplied by 1/sqrt({count}). `hog@1`: HOG of the image converted to grayscale and
resized to 64 x 64 (8-pixel cells, 9 unsigned orientation bins, 2 x 2-cell blocks, L2-Hys),
1764 values. `lite0@1`: the 1280-d global-average-pooled last feature map of EfficientNet-Lite0
(ImageNet-1k weights, RGB resized to 224 x 224, scaled (x - 127) / 128). Labelhub's
`server/ai/hog.py` and `server/ai/network.py` compute them exactly.
"""


def bundle(name: str, version: int, head: LinearHead, metrics: dict[str, Any]) -> bytes:
    """The ZIP's bytes."""
    readme = _README.format(
        name=name, version=version, kind="multi-label" if head.multi_label else "single-label",
        dim=head.coef.shape[1], labels=len(head.labels),
        activation="a sigmoid per label" if head.multi_label else "a softmax over the labels",
        threshold=head.threshold, features=", ".join(f"`{f}`" for f in head.features),
        count=len(head.features))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.onnx", head_onnx(head, f"{name}-v{version}"))
        z.writestr("labels.txt", "".join(f"{label}\n" for label in head.labels))
        z.writestr("metrics.json", json.dumps(metrics, indent=1))
        z.writestr("README.md", readme)
    return out.getvalue()
