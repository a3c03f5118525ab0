"""Shared builders for the geometry tests."""

from __future__ import annotations

from typing import Any

import pytest

from server.geometry import LabelObject, Policy, parse_object


def square(x: float, y: float, s: float) -> list[list[float]]:
    return [[x, y], [x + s, y], [x + s, y + s], [x, y + s]]


def polygon(parts: list[dict[str, Any]], oid: str = "p", **extra: Any) -> LabelObject:
    return parse_object({"id": oid, "type": "polygon", "geometry": {"parts": parts}, **extra})


def obj(kind: str, geometry: dict[str, Any], oid: str = "o", **extra: Any) -> LabelObject:
    return parse_object({"id": oid, "type": kind, "geometry": geometry, **extra})


@pytest.fixture
def policy() -> Policy:
    return Policy(image_width=100, image_height=80)
