"""A multipart/form-data reader for the image upload route: many small files, little work each.

Why not Starlette's ``request.form()``: measured on the 2-core VM, it spent ~70 ms of the event
loop per 1,000 small PNGs (python-multipart 0.0.34 calls back into Python for every header
byte range, Starlette then builds a ``SpooledTemporaryFile`` and parses the
``Content-Disposition`` of each part) — and an upload request is read on the loop that also
serves the hub. This reader finds the delimiters with ``bytes.find`` (C speed), matches the
common ``form-data; name="..."; filename="..."`` header with one regular expression and hands
anything unusual (``filename*=``, escapes, an old browser's full path) to python-multipart's own
``parse_options_header``, so names decode as Starlette's would. It parses as the body arrives
(the request's limit on the body is enforced by the caller's ``receive``), keeps at most the
unparsed tail plus the parts read so far in memory, and yields to the loop every few hundred
parts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import parse_options_header

from server.errors import ApiError, invalid

__all__ = ["FIELD_LIMIT", "Form", "Part", "boundary_of", "read_form"]

FIELD_LIMIT = 1 << 20  # bytes of one plain (non-file) field
_YIELD_EVERY = 256  # parts between two yields to the event loop
_DISPOSITION = re.compile(
    rb'form-data; ?name="([^"\\\r\n]*)"(?:; ?filename="([^"\\\r\n]*)")?[ \t]*', re.IGNORECASE)


@dataclass
class Part:
    """A file part: the field it came in and the name the client gave it."""

    field: str
    filename: str
    data: bytes


@dataclass
class Form:
    """The parts of ``files_field`` in the order sent (``None``: a plain field sent under that
    name, not a file) and the plain fields. Files under other names count, and are dropped."""

    files: list[Part | None] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)


def _malformed(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # as Starlette does: latin-1 decodes every byte
        return raw.decode("latin-1")


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type, or a 422 naming what to send."""
    ctype, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if ctype != b"multipart/form-data" or not boundary:
        raise invalid("send one or more files in multipart fields named 'files'")
    if len(boundary) > 200:
        raise _malformed("the multipart boundary is too long")
    return boundary


def _disposition(headers: bytes) -> tuple[str, str | None]:
    """``(field name, filename or None)`` from a part's header block."""
    for line in headers.split(b"\r\n"):
        key, sep, value = line.partition(b":")
        if not sep or key.strip().lower() != b"content-disposition":
            continue
        value = value.strip()
        fast = _DISPOSITION.fullmatch(value)
        if fast is not None:
            name, filename = fast.group(1), fast.group(2)
            return _decode(name), None if filename is None else _decode(filename)
        kind, options = parse_options_header(value)
        if kind != b"form-data" or b"name" not in options:
            break
        filename = options.get(b"filename")
        return _decode(options[b"name"]), None if filename is None else _decode(filename)
    raise _malformed("a multipart part lacks a 'Content-Disposition: form-data; name=...' header")


class _Parser:
    def __init__(self, boundary: bytes, files_field: str, max_files: int, max_fields: int
                 ) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.files_field, self.max_files, self.max_fields = files_field, max_files, max_fields
        # The body starts with "--boundary" (no CRLF before the first one): prepending one lets
        # every delimiter be searched the same way. A preamble before it is skipped.
        self.buf = bytearray(b"\r\n")
        self.pos = 0  # where the unparsed bytes start in ``buf``
        self.scan = 0  # where to look for the delimiter that ends the current part
        self.started = False
        self.ended = False
        self.form = Form()
        self.file_count = 0

    def feed(self, chunk: bytes) -> int:
        """Take more of the body; returns how many parts it completed."""
        if self.ended:
            return 0  # the epilogue after the closing delimiter is ignored
        if self.pos > (1 << 20) and self.pos > len(self.buf) // 2:
            del self.buf[:self.pos]  # compact now and then, not per part (quadratic)
            self.scan = max(0, self.scan - self.pos)
            self.pos = 0
        self.buf += chunk
        done = 0
        while not self.ended and self._step():
            done += 1
        return done

    def _step(self) -> bool:
        buf, delim = self.buf, self.delimiter
        if not self.started:
            at = buf.find(delim, self.pos)
            if at < 0:
                self.pos = max(self.pos, len(buf) - len(delim))  # a preamble: skip it
                return False
            self.started, self.pos = True, at
        # ``pos`` is at a delimiter: what follows says "--" (the end) or CRLF (a part).
        after = self.pos + len(delim)
        if len(buf) < after + 2:
            return False
        if buf[after:after + 2] == b"--":
            self.ended = True
            return False
        line_end = buf.find(b"\r\n", after)
        if line_end < 0:
            if len(buf) - after > 1024:
                raise _malformed("the multipart body is malformed")
            return False
        if buf[after:line_end].strip(b" \t"):
            raise _malformed("the multipart body is malformed")
        head_start = line_end + 2
        if buf[head_start:head_start + 2] == b"\r\n":
            head_end, data_start = head_start, head_start + 2
        else:
            head_end = buf.find(b"\r\n\r\n", head_start)
            if head_end < 0:
                if len(buf) - head_start > 16 << 10:
                    raise _malformed("a multipart part's headers are too long")
                return False
            data_start = head_end + 4
        next_delim = buf.find(delim, max(data_start, self.scan))
        if next_delim < 0:
            # Searched up to here: a big part arriving in many chunks is scanned once, not
            # once per chunk (quadratic).
            self.scan = max(data_start, len(buf) - len(delim) + 1)
            return False
        self.scan = 0
        name, filename = _disposition(bytes(buf[head_start:head_end]))
        self._part(name, filename, data_start, next_delim)
        self.pos = next_delim
        return True

    def _part(self, name: str, filename: str | None, start: int, end: int) -> None:
        form = self.form
        if filename is not None:
            self.file_count += 1
            if self.file_count > self.max_files:
                raise ApiError(413, "too_many_files",
                               f"an upload request holds at most {self.max_files} files; send "
                               "the rest in further requests", {"limit_files": self.max_files})
            if name == self.files_field:
                form.files.append(Part(name, filename, bytes(self.buf[start:end])))
            return
        if sum(len(v) for v in form.fields.values()) >= self.max_fields:
            raise invalid(f"a multipart body holds at most {self.max_fields} plain fields")
        if end - start > FIELD_LIMIT:
            raise invalid(f"a plain multipart field is at most {FIELD_LIMIT} bytes")
        form.fields.setdefault(name, []).append(_decode(bytes(self.buf[start:end])))
        if name == self.files_field:
            form.files.append(None)


async def read_form(chunks: AsyncIterator[bytes], content_type: str, files_field: str,
                    max_files: int, max_fields: int = 100) -> Form:
    """Read a multipart body into a :class:`Form`. A malformed or truncated body is a 400, a
    body that is not a form a 422, more than ``max_files`` files a 413 naming the limit."""
    parser = _Parser(boundary_of(content_type), files_field, max_files, max_fields)
    since_yield = 0
    async for chunk in chunks:
        since_yield += parser.feed(chunk)
        if since_yield >= _YIELD_EVERY:
            since_yield = 0
            await asyncio.sleep(0)  # a big chunk of many small parts: let the hub run
    if not parser.ended:
        raise _malformed("the multipart body is truncated (no closing boundary)")
    return parser.form
