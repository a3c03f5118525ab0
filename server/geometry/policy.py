"""Per-image rules for labels, built from the project's settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import GeometryError

#: Default Douglas-Peucker tolerance (pixels) when simplification is on but no tolerance is set.
DEFAULT_SIMPLIFY_TOLERANCE = 1.0


@dataclass(frozen=True)
class Policy:
    """What the project allows for the labels of one image.

    ``allow_outside`` lets shapes extend past the image; ``fit_to_image`` clips every shape onto
    the image instead (it wins over ``allow_outside``); ``bbox_aspect`` (w / h) snaps created and
    resized boxes; ``simplify_tolerance`` is the Douglas-Peucker tolerance used when a bitmap is
    turned into a polygon (0 = the exact pixel outline).
    """

    image_width: int
    image_height: int
    allow_outside: bool = False
    fit_to_image: bool = False
    bbox_aspect: float | None = None
    simplify_tolerance: float = 0.0
    max_vertices: int = 100_000
    max_objects: int = 20_000
    max_label_len: int = 200
    max_id_len: int = 64
    max_attributes: int = 64
    max_attribute_key_len: int = 64
    max_attribute_len: int = 1_000
    max_keypoints: int = 200
    max_brush_points: int = 10_000
    max_brush_radius: float = 500.0
    max_batch_ops: int = 20_000

    def __post_init__(self) -> None:
        for name in ("image_width", "image_height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 100_000:
                raise GeometryError(f"policy.{name}", "must be an integer in 1..100000")
        if self.bbox_aspect is not None and not (
            math.isfinite(self.bbox_aspect) and self.bbox_aspect > 0
        ):
            raise GeometryError("policy.bbox_aspect", "must be a positive finite number or null")
        if not (math.isfinite(self.simplify_tolerance) and self.simplify_tolerance >= 0):
            raise GeometryError("policy.simplify_tolerance", "must be a finite number >= 0")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], width: int, height: int) -> Policy:
        """Policy from project settings keys (missing keys take the defaults)."""
        aspect = settings.get("fixed_bbox_aspect_ratio")
        if aspect is not None:
            aspect = float(aspect)
        tolerance = 0.0
        if settings.get("simplify_polygons"):
            raw = settings.get("simplify_tolerance")
            tolerance = DEFAULT_SIMPLIFY_TOLERANCE if raw is None else float(raw)
        return cls(
            image_width=int(width),
            image_height=int(height),
            allow_outside=bool(settings.get("allow_labeling_outside_image", False)),
            fit_to_image=bool(settings.get("fit_labels_to_image", False)),
            bbox_aspect=aspect,
            simplify_tolerance=tolerance,
        )

    @property
    def brush_radius_limit(self) -> float:
        """The largest brush radius: ``max_brush_radius``, and never more than the image's
        diagonal (a larger one paints the same pixels at a higher cost)."""
        return min(self.max_brush_radius, round(math.hypot(self.image_width, self.image_height), 1))

    @property
    def must_be_inside(self) -> bool:
        """Shapes off the image are rejected (neither allowed nor clipped)."""
        return not self.allow_outside and not self.fit_to_image
