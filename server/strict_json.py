"""JSON as it may enter the server: UTF-8, no NaN, bounded nesting, only valid Unicode text.

Every edge that parses client JSON (REST bodies, socket frames, imports) goes through
:func:`loads`, so everything stored is text that PostgreSQL, SQLite and every encoder accept.
A lone surrogate (``"\\udc00"`` is legal JSON syntax but no Unicode character) stored once makes
every later read of it fail: it is refused here, before anything is written. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JsonInputError", "check_text", "loads", "valid_text"]

#: Deepest nesting of arrays and objects accepted. Real documents are under 12 deep (a
#: multi-part polygon inside an op inside a frame); CPython's parser and pydantic recurse, and a
#: few thousand levels would exhaust the stack (a RecursionError, not a ValueError).
MAX_DEPTH = 64

_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string is quote to quote
# bytes.translate keeps the brackets (as square ones) and drops every other byte, in one C pass;
# UTF-8 never puts a bracket byte inside a multi-byte character.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# A \uD800-\uDFFF escape: maybe half of a valid pair, maybe a lone surrogate; checked exactly then.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonInputError(ValueError):
    """Malformed input; ``code`` is the error code the edge answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; JSON has none


def _deeper_than(text: str, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` outside strings. All in C: the
    brackets are kept, and each pass of ``replace`` removes one level of empty pairs."""
    outside = _STRING.sub("", _ESCAPE.sub("", text)).encode("utf-8", "surrogatepass")
    brackets = outside.translate(_SQUARE, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if shorter == brackets:
            return False  # unbalanced: not JSON, which the parser reports
        brackets = shorter
    return bool(brackets)


def valid_text(value: str) -> bool:
    """True when ``value`` is encodable as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, what: str = "text") -> str:
    """``value`` unchanged, or :class:`JsonInputError` (``invalid_text``) for a lone surrogate."""
    if not valid_text(value):
        raise JsonInputError("invalid_text", f"{what} is not valid Unicode (a lone surrogate)")
    return value


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse client JSON or raise :class:`JsonInputError` (``bad_json``, ``too_deep`` or
    ``invalid_text``). Bytes must be UTF-8 (RFC 8259); the stdlib would also take UTF-16/32 and
    let encoded surrogates through (it decodes with ``surrogatepass``)."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError("bad_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = raw
        if not valid_text(text):
            raise JsonInputError("invalid_text", "the text holds a lone surrogate, which is not Unicode")
    # Fewer brackets than the limit cannot nest past it: the scan runs only when it might.
    if text.count("[") + text.count("{") > max_depth and _deeper_than(text, max_depth):
        raise JsonInputError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        data = json.loads(text or "null", parse_constant=_reject_constant)
    except RecursionError:  # thousands of unclosed brackets: the scan left them to the parser
        raise JsonInputError("too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonInputError("bad_json", f"not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and not valid_text(json.dumps(data, ensure_ascii=False)):
        raise JsonInputError("invalid_text", "JSON text holds a lone surrogate (\\ud800-\\udfff "
                                             "not in a pair), which is not Unicode")
    return data
