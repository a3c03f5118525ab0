"""Reading a frame's top-level ``type`` and ``id`` from its first bytes, without parsing it all.

A frame over the size limit is refused unparsed, yet its error should carry the request's id so
the client learns which request failed. The id is read from the head of the frame at the top
level only: an object inside an ``op`` has an ``"id"`` of its own. Clients put ``type`` and
``id`` first (the SDK and the browser app do); a frame whose id comes later gets an error without
one. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["HEAD_CHARS", "head_fields"]

#: How much of a frame is scanned.
HEAD_CHARS = 4096

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[{}\[\]:,]|true|false|null')


def head_fields(text: str, names: tuple[str, ...] = ("type", "id")) -> dict[str, Any]:
    """The top-level string or number fields ``names`` found in the first :data:`HEAD_CHARS`
    characters of ``text`` (a JSON object, maybe cut short)."""
    found: dict[str, Any] = {}
    depth, at_key, key = 0, False, None
    for match in _TOKEN.finditer(text, 0, HEAD_CHARS):
        token = match.group()
        if token in "{[":
            depth += 1
            at_key = depth == 1 and token == "{"
        elif token in "}]":
            depth -= 1
            at_key = False
        elif token == ",":
            at_key = depth == 1
        elif token == ":":
            pass
        elif depth == 1 and at_key:
            key, at_key = _string(token), False
            continue
        elif depth == 1 and key in names:
            try:
                found[key] = json.loads(token)
            except ValueError:
                pass
            if len(found) == len(names):
                break
        key = key if token == ":" else None
    return found


def _string(token: str) -> str | None:
    if not token.startswith('"'):
        return None
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None
