"""JSON as it may enter the server: UTF-8, no NaN, bounded nesting, only valid Unicode text.

Every edge that parses client JSON (REST bodies, socket frames, imports) goes through
:func:`loads`, so everything stored is text that PostgreSQL, SQLite and every encoder accept.
A lone surrogate (``"\\udc00"`` is legal JSON syntax but no Unicode character) stored once makes
every later read of it fail: it is refused here, before anything is written. Pure: no I/O.

The parse is orjson's (2-3x faster than the standard library's on an 800 KB batch frame), and
the standard library's wherever the two could differ: orjson reads an integer past 64 bits as
a float and refuses what ``json.loads`` reads as infinity (``1e400``), so a document with a
19-digit integer or any orjson refusal is parsed by ``json.loads`` as before, and every error and
its code stays as it was.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson

__all__ = ["MAX_DEPTH", "JsonInputError", "check_text", "loads", "server_loads", "valid_text"]

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
# Quotes and brackets only (one C pass), for the depth scan.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_QUOTE, _OPENERS = ord('"'), np.array([ord("["), ord("{")], np.uint8)
# An integer orjson might read as a float (past 64 bits): the standard library parses then. A
# number token never starts right after a letter, a digit, a quote or a dot (which keeps hex
# ids and fractions out); after any other byte (or at the start), a 19-digit run may be one.
# The digits are marked in one C pass (bytes.translate) and the runs found by bytes.find: ~1 ms
# for a 5,000-box batch, where one regular expression (a look-behind tried at every position)
# took 17 ms and a NumPy scan 7, more than orjson's whole parse.
_DIGIT_MARKS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_RUN_OF_19 = b"0" * 19
_NO_NUMBER_AFTER = frozenset(b'0123456789".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')


def _long_integer(text: str) -> bool:
    """True when ``text`` may hold an integer of 19 digits or more (in a string or not: a false
    alarm only costs the slower parse)."""
    raw = text.encode("utf-8", "surrogatepass")
    marks = raw.translate(_DIGIT_MARKS)
    start = marks.find(_RUN_OF_19)  # the leftmost match starts its run of digits
    while start >= 0:
        if start == 0 or raw[start - 1] not in _NO_NUMBER_AFTER:
            return True
        end = marks.find(b" ", start)
        if end < 0:
            return False
        start = marks.find(_RUN_OF_19, end)
    return False


class JsonInputError(ValueError):
    """Malformed input; ``code`` is the error code the edge answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; JSON has none


def _deeper_than(text: str, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` outside strings. The quotes and
    brackets are kept (one C pass), strings are what lies between the odd and even quotes, and
    the depth is a running sum (numpy); a document whose quotes or brackets do not pair up
    (not JSON: the parser reports it) takes the exact scan below, so the answer is the same."""
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    structure = text.encode("utf-8", "surrogatepass").translate(None, _NOT_STRUCTURE)
    kept = np.frombuffer(structure, np.uint8)
    quotes = kept == _QUOTE
    n_quotes = int(np.count_nonzero(quotes))
    if n_quotes % 2 == 0:
        inside = (np.cumsum(quotes, dtype=np.int64) & 1).astype(bool)  # opening quote: odd
        brackets = kept[~(inside | quotes)]
        if not len(brackets):
            return False
        depth = np.cumsum(np.where(np.isin(brackets, _OPENERS), 1, -1), dtype=np.int64)
        if depth[-1] == 0 and depth.min() >= 0:  # every bracket closes: depth is nesting
            return int(depth.max()) > limit
    return _deeper_than_exact(text, limit)


def _deeper_than_exact(text: str, limit: int) -> bool:
    """:func:`_deeper_than` for any text, all in C: the brackets are kept, and each pass of
    ``replace`` removes one level of empty pairs."""
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
    if not _long_integer(text):
        try:
            # orjson refuses lone surrogates, NaN and infinities: what it reads needs no check.
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard library decides (and words the error) as before
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


def server_loads(text: str) -> Any:
    """JSON the server wrote itself (the database's, checked by :func:`loads` on the way in):
    orjson, or the standard library wherever the two could read it differently."""
    if not _long_integer(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # 1e400: the standard library reads it as before
    return json.loads(text)
