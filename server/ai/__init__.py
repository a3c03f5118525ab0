"""Image features for AI-assisted labeling: HOG and a pre-trained EfficientNet-Lite0.

Importing this package loads nothing heavy: the network (onnx, onnxruntime) loads only when
a feature that needs it is computed. Others use ``server.ai.features``.
"""
