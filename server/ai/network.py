"""EfficientNet-Lite0 as an ONNX graph, built from its state dict with batch-norm folded in.

Lite0 is EfficientNet-B0 made for plain CPUs: ReLU6 instead of swish, no squeeze-and-excitation,
the stem (32 channels) and head (1280) kept at fixed width. Convolutions pad like TensorFlow's
"SAME" (the extra row/column of an odd total goes after: ONNX ``SAME_UPPER``), as the weights
were trained. The architecture is checked against the state dict's names and shapes before
anything is built, so a different file fails loudly instead of computing nonsense.

Outputs: ``logits`` (n, 1000), ``feature`` (n, 1280: the pooled head activation), ``map16``
(n, 112, h/16, w/16: the last stride-16 block) and ``map32`` (n, 1280, h/32, w/32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.ai._onnx import onnx
from server.ai.errors import ModelError

__all__ = ["BLOCKS", "BN_EPS", "OPSET", "Block", "build", "check_architecture"]

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which these weights were trained with
OPSET = 17


@dataclass(frozen=True)
class Block:
    """One MBConv block: expand 1x1 (if expand > 1), depthwise k x k, project 1x1."""

    cin: int
    cout: int
    kernel: int
    stride: int
    expand: int

    @property
    def skip(self) -> bool:
        return self.stride == 1 and self.cin == self.cout


def _stage(repeats: int, cin: int, cout: int, kernel: int, stride: int, expand: int) -> list[Block]:
    return [
        Block(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand)
        for i in range(repeats)
    ]


# EfficientNet-Lite0's stages: (repeats, in, out, kernel, first stride, expand ratio).
BLOCKS: tuple[Block, ...] = tuple(
    _stage(1, 32, 16, 3, 1, 1)
    + _stage(2, 16, 24, 3, 2, 6)
    + _stage(2, 24, 40, 5, 2, 6)
    + _stage(3, 40, 80, 3, 2, 6)
    + _stage(3, 80, 112, 5, 1, 6)
    + _stage(4, 112, 192, 5, 2, 6)
    + _stage(1, 192, 320, 3, 1, 6)
)
STEM, HEAD, CLASSES = 32, 1280, 1000
_MAP16_BLOCK = 10  # the last block at stride 16 (112 channels)


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(conv: str, bn: str, shape: tuple[int, ...]) -> None:
        shapes[f"{conv}.weight"] = shape
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{part}"] = (shape[0],)
        shapes[f"{bn}.num_batches_tracked"] = ()

    conv_bn("_conv_stem", "_bn0", (STEM, 3, 3, 3))
    for i, b in enumerate(BLOCKS):
        p = f"_blocks.{i}"
        mid = b.cin * b.expand
        if b.expand != 1:
            conv_bn(f"{p}._expand_conv", f"{p}._bn0", (mid, b.cin, 1, 1))
        conv_bn(f"{p}._depthwise_conv", f"{p}._bn1", (mid, 1, b.kernel, b.kernel))
        conv_bn(f"{p}._project_conv", f"{p}._bn2", (b.cout, mid, 1, 1))
    conv_bn("_conv_head", "_bn1", (HEAD, BLOCKS[-1].cout, 1, 1))
    shapes["_fc.weight"] = (CLASSES, HEAD)
    shapes["_fc.bias"] = (CLASSES,)
    return shapes


def check_architecture(state: dict[str, np.ndarray]) -> None:
    """ModelError unless ``state`` has exactly EfficientNet-Lite0's tensors and shapes."""
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or extra or wrong:
        raise ModelError(
            "weights are not EfficientNet-Lite0's: "
            f"missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {wrong[:3]}"
        )


class _Graph:
    def __init__(self, state: dict[str, np.ndarray], eps: float) -> None:
        self.state = state
        self.eps = eps
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, groups: int, relu6: bool) -> str:
        w = self.state[f"{conv}.weight"].astype(np.float64)
        scale = self.state[f"{bn}.weight"] / np.sqrt(self.state[f"{bn}.running_var"] + self.eps)
        bias = self.state[f"{bn}.bias"] - self.state[f"{bn}.running_mean"] * scale
        wf = self.const(f"{conv}.w", (w * scale[:, None, None, None]).astype(np.float32))
        bf = self.const(f"{conv}.b", bias.astype(np.float32))
        k = int(w.shape[2])
        y = self._name(conv)
        self.nodes.append(
            onnx.helper.make_node(
                "Conv", [x, wf, bf], [y], kernel_shape=[k, k], strides=[stride, stride],
                group=groups, auto_pad="SAME_UPPER" if k > 1 or stride > 1 else "NOTSET",
            )
        )  # fmt: skip
        return self.relu6(y) if relu6 else y

    def relu6(self, x: str) -> str:
        y = self._name("relu6")
        self.nodes.append(onnx.helper.make_node("Clip", [x, "zero", "six"], [y]))
        return y

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.nodes.append(onnx.helper.make_node("Add", [a, b], [y]))
        return y


def build(state: dict[str, np.ndarray], eps: float = BN_EPS) -> onnx.ModelProto:
    """The checked ONNX model for a Lite0 state dict; input ``image`` (n, 3, h, w) float32."""
    check_architecture(state)
    g = _Graph(state, eps)
    g.const("zero", np.array(0.0, np.float32))
    g.const("six", np.array(6.0, np.float32))
    x = g.conv_bn("image", "_conv_stem", "_bn0", 2, 1, relu6=True)
    map16 = ""
    for i, b in enumerate(BLOCKS):
        p = f"_blocks.{i}"
        mid = b.cin * b.expand
        h = x
        if b.expand != 1:
            h = g.conv_bn(h, f"{p}._expand_conv", f"{p}._bn0", 1, 1, relu6=True)
        h = g.conv_bn(h, f"{p}._depthwise_conv", f"{p}._bn1", b.stride, mid, relu6=True)
        h = g.conv_bn(h, f"{p}._project_conv", f"{p}._bn2", 1, 1, relu6=False)
        x = g.add(x, h) if b.skip else h
        if i == _MAP16_BLOCK:
            map16 = x
    head = g.conv_bn(x, "_conv_head", "_bn1", 1, 1, relu6=True)
    g.nodes += [
        onnx.helper.make_node("Identity", [map16], ["map16"]),
        onnx.helper.make_node("Identity", [head], ["map32"]),
        onnx.helper.make_node("GlobalAveragePool", [head], ["pooled"]),
        onnx.helper.make_node("Flatten", ["pooled"], ["feature"], axis=1),
        onnx.helper.make_node(
            "Gemm", ["feature", g.const("_fc.w", state["_fc.weight"].astype(np.float32)),
                     g.const("_fc.b", state["_fc.bias"].astype(np.float32))],
            ["logits"], transB=1,
        ),
    ]  # fmt: skip
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [onnx.helper.make_tensor_value_info("image", f32, ["n", 3, "h", "w"])],
        [
            onnx.helper.make_tensor_value_info("logits", f32, ["n", CLASSES]),
            onnx.helper.make_tensor_value_info("feature", f32, ["n", HEAD]),
            onnx.helper.make_tensor_value_info(
                "map16", f32, ["n", BLOCKS[_MAP16_BLOCK].cout, None, None]
            ),
            onnx.helper.make_tensor_value_info("map32", f32, ["n", HEAD, None, None]),
        ],
        g.inits,
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="labelhub"
    )
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model
