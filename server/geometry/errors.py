"""The one error type of the geometry core."""

from __future__ import annotations

from typing import Any


class GeometryError(Exception):
    """A rejected shape, op or policy input.

    ``field`` is a dotted path to the offending value (``"object.geometry.parts.0.exterior"``),
    ``message`` says what is wrong with it; ``str(error)`` joins both.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by (field, message), not by str(self): it crosses the worker pool's process
        # boundary (server/offload.py).
        return (type(self), (self.field, self.message))

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


def join_path(*parts: object) -> str:
    """Dotted path from path pieces, skipping empty ones."""
    return ".".join(str(p) for p in parts if p != "" and p is not None)


def from_validation_error(exc: Any, prefix: str) -> GeometryError:
    """Turn a pydantic ``ValidationError`` into a ``GeometryError`` naming its first field."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return GeometryError(prefix, "invalid value")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if not _is_union_tag(p)]
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return GeometryError(join_path(prefix, *loc), message)


def _is_union_tag(part: object) -> bool:
    # pydantic puts union member names (e.g. "function-plain[...]") into locations.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})
