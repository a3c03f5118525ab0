"""The ``onnx`` package, imported on first use.

Importing it costs ~0.9 s of CPU (most of it ``ml_dtypes``' extension), and every process that
imports the app paid that at start — each ``labelhub serve``, worker and CLI command — though only
the network's one-time conversion and the model downloads build ONNX graphs. Attribute access
(``onnx.helper.make_node``, ``onnx.TensorProto.FLOAT``) loads it (the standard library's
``importlib.util.LazyLoader``).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["onnx"]


def _lazy(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:  # pragma: no cover - a dependency of the package
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # the real module, for the type checker
    import onnx
else:
    onnx = _lazy("onnx")
