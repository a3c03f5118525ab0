"""Reading uploaded archives and XML safely: ZIP members within a size cap, XML through
``defusedxml`` (no DTDs, so no entity expansion and no external entities)."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from server.formats._importing import ImportFileError

__all__ = ["MAX_MEMBER_BYTES", "open_zip", "parse_xml", "read_member"]

MAX_MEMBER_BYTES = 256 << 20


def open_zip(body: bytes, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile:
        raise ImportFileError(f"expected {what}: the file is not a ZIP archive") from None


def read_member(archive: zipfile.ZipFile, path: str) -> bytes:
    """A member's bytes; the declared size is checked first and the read is bounded (a ZIP bomb
    decompresses no further than the cap)."""
    info = archive.getinfo(path)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ImportFileError(f"{path}: larger than {MAX_MEMBER_BYTES} bytes unpacked")
    try:
        with archive.open(info) as member:
            data = member.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError) as exc:
        raise ImportFileError(f"{path}: cannot be read from the ZIP ({exc})") from None
    if len(data) > MAX_MEMBER_BYTES:
        raise ImportFileError(f"{path}: larger than {MAX_MEMBER_BYTES} bytes unpacked")
    return data


def parse_xml(data: bytes, where: str) -> Element:
    """The document's root; a DTD (entity declarations, external entities) is refused."""
    try:
        root: Any = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ImportFileError(f"{where}: refused XML ({type(exc).__name__}: DTDs and entities "
                              "are not accepted)") from None
    except ParseError as exc:
        raise ImportFileError(f"{where}: not well-formed XML ({exc})") from None
    return root
