from __future__ import annotations

import numpy as np
import pytest

from server.geometry import GeometryError, Ring
from server.geometry.topology import check_polyline, check_ring, ring_area


def test_ring_area_sign_follows_orientation() -> None:
    sq = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    assert ring_area(sq) == 4.0  # clockwise on screen (y down) is positive
    assert ring_area(sq[::-1].copy()) == -4.0


def test_check_ring_and_polyline() -> None:
    check_ring(Ring([[0, 0], [2, 0], [2, 2]]), "r")
    check_ring(Ring([[0, 0], [2, 0], [2, 2], [0, 0]]), "r")  # an explicit closing vertex is fine
    with pytest.raises(GeometryError) as err:
        check_ring(Ring([[0, 0], [2, 2], [2, 0], [0, 2]]), "x.y")
    assert err.value.field == "x.y"
    check_polyline(Ring([[0, 0], [0, 0], [1, 0]]), "p")
    with pytest.raises(GeometryError):
        check_polyline(Ring([[3, 3], [3, 3]]), "p")
