"""The errors of the image-feature code, in a module of their own so anyone can catch them."""

from __future__ import annotations

__all__ = ["ImageDecodeError", "ModelError"]


class ModelError(RuntimeError):
    """The network cannot be used: weights missing, corrupted or not the expected file."""


class ImageDecodeError(ValueError):
    """The bytes are not an image OpenCV can decode."""
