"""Smart selection for one stored image: validate the request, run the geometry core in the
worker pool (server/offload.py; GrabCut, the mask decode and encode never run on the event loop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request

from server import offload
from server._web import Check, read_body
from server.errors import ApiError, invalid
from server.geometry import GeometryError, smart_select
from server.geometry.rle import rle_decode, rle_encode
from server.storage import ImageRejected, decode

MAX_POINTS = 20_000  # all strokes together; a brush stroke is a few hundred points

# Finite and within reach of any image (cv2 draws with 32-bit fixed-point coordinates).
Coord = Annotated[float, Field(ge=-1e6, le=1e6)]
Point = tuple[Coord, Coord]


class SmartSelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rect: tuple[Coord, Coord, Coord, Coord]
    foreground: list[list[Point]] = Field(default_factory=list)
    background: list[list[Point]] = Field(default_factory=list)
    brush_radius: int = Field(default=5, ge=1, le=200)
    previous: dict[str, Any] | None = None

    @field_validator("foreground", "background")
    @classmethod
    def _bounded(cls, strokes: list[list[Point]]) -> list[list[Point]]:
        if sum(len(s) for s in strokes) > MAX_POINTS:
            raise ValueError(f"at most {MAX_POINTS} stroke points")
        return strokes


async def read_request(request: Request, check: Check) -> SmartSelectIn:
    """The body, read only once ``check`` (the caller's privilege test) has passed."""
    return await read_body(request, SmartSelectIn, check)


def _check(body: SmartSelectIn, width: int, height: int) -> None:
    x, y, w, h = body.rect
    if w < 2 or h < 2 or x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:
        raise ApiError(422, "invalid", f"rect must be at least 2x2 and lie inside the "
                       f"{width}x{height} image", [{"field": "rect", "message": "outside the image"}])
    # Compare the previous mask's size with the image before decoding it: a few bytes of
    # compressed counts can describe a 16384x16384 mask (half a gigabyte once decoded).
    if body.previous is not None and body.previous.get("size") != [height, width]:
        raise invalid(f"previous: the mask must be {height}x{width}",
                      [{"field": "previous.size", "message": f"must be [{height}, {width}]"}])


def _run(data: bytes, body: SmartSelectIn, width: int, height: int) -> dict[str, Any]:
    """The selection (in a worker process). An :class:`ApiError` does not pickle, so a refusal
    comes back as ``{"error": [status, code, message, details]}``."""
    try:
        return _select(data, body, width, height)
    except ApiError as exc:
        return {"error": [exc.status, exc.code, exc.message, exc.details]}


def _select(data: bytes, body: SmartSelectIn, width: int, height: int) -> dict[str, Any]:
    previous = None
    if body.previous is not None:
        try:
            previous = rle_decode(body.previous)
        except GeometryError as exc:
            raise invalid(f"previous: {exc.message}", [{"field": "previous", "message": exc.message}]) from None
        if previous.shape != (height, width):
            raise invalid(f"previous: the mask must be {height}x{width}")
    try:
        image = decode(data)
    except ImageRejected:
        raise ApiError(404, "not_found", "the image file is unreadable") from None
    try:
        mask = smart_select(image, body.rect, body.foreground, body.background,
                            previous=previous, brush_radius=body.brush_radius)
    except GeometryError as exc:
        raise invalid(str(exc), [exc.to_dict()]) from None
    return {"rle": rle_encode(mask), "area": int(mask.sum())}


async def run(read: Callable[[], Awaitable[bytes]], width: int, height: int,
              body: SmartSelectIn) -> dict[str, Any]:
    _check(body, width, height)
    data = await read()  # the image's bytes from the store, once the request is known good
    # The image is decoded and the masks en/decoded at full size; GrabCut itself works on at
    # most MAX_WORK_PIXELS. Always over the inline cost: every selection goes to the pool.
    cost = max(width * height, offload.get().inline_cost)
    try:
        result = await offload.run(_run, data, body, width, height, cost=cost)
    except offload.Busy as exc:
        raise ApiError(503, "busy", exc.message) from None
    if "error" in result:
        status, code, message, details = result["error"]
        raise ApiError(status, code, message, details)
    return result
