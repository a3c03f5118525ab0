"""Smart selection with GrabCut (filled in below)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def smart_select(
    image: npt.NDArray[np.uint8],
    rect: tuple[float, float, float, float],
    foreground_strokes: Any = (),
    background_strokes: Any = (),
    previous: npt.NDArray[np.bool_] | None = None,
    brush_radius: float = 3.0,
) -> npt.NDArray[np.bool_]:
    raise NotImplementedError
