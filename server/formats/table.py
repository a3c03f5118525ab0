"""CSV: one row per image with its classification labels and the default one.

    image,labels,default_label,state
    a.jpg,cat;dog,dog,accepted
    b.jpg,cat,cat,done

``labels`` is a ``;``-separated list (a ``;`` or ``\\`` inside a name is escaped with ``\\``).
A cell that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or a CR) is
written with a ``'`` before it (which spreadsheets show as text), and so is one that starts with
quotes before such a character; the import takes exactly one such ``'`` off again, so every name
round-trips.
``state`` (the workflow state) is exported for the record; the import ignores it.
On import ``default_label`` may be empty (then the first label is the default of an image that
had none), and an image may appear on several rows: their labels are combined, in both the
replace and the merge mode.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

from server.formats._importing import ImportFileError, Incoming
from server.formats._source import ExportJob, iter_images

MEDIA_TYPE = "text/csv; charset=utf-8"
SUFFIX = "csv"
HEADER = ["image", "labels", "default_label"]
EXPORT_HEADER = [*HEADER, "state"]


# Quotes, then a character that starts a formula (OWASP's CSV injection list).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def guard_cell(value: str) -> str:
    """``value`` safe to open in a spreadsheet: no formula runs, :func:`unguard_cell` undoes it."""
    return "'" + value if _FORMULA.match(value) else value


def unguard_cell(value: str) -> str:
    return value[1:] if value.startswith("'") and _FORMULA.match(value, 1) else value


def escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace(";", "\\;")


def split_labels(cell: str) -> list[str]:
    out, cur, i = [], [], 0
    while i < len(cell):
        ch = cell[i]
        if ch == "\\" and i + 1 < len(cell):
            cur.append(cell[i + 1])
            i += 2
            continue
        if ch == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_HEADER)
    async for batch in iter_images(job.sessions, job.project_id, job.flt, objects=False):
        for img in batch:
            default = next((s.label for s in img.labels if s.is_default), "")
            writer.writerow([guard_cell(img.name), guard_cell(";".join(escape(s.label) for s in img.labels)),
                             guard_cell(default), img.state])
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def parse(body: bytes) -> list[Incoming]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"CSV must be UTF-8: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFileError("the CSV file is empty") from None
    except csv.Error as exc:
        raise ImportFileError(f"bad CSV: {exc}") from None
    if "image" not in header or "labels" not in header:
        raise ImportFileError("the CSV header must have the columns image, labels[, default_label]")
    at_image, at_labels = header.index("image"), header.index("labels")
    at_default = header.index("default_label") if "default_label" in header else None
    out: list[Incoming] = []
    try:
        for n, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header):
                out.append(Incoming(n, row[0] if row else "", error=("row", f"expected {len(header)} columns")))
                continue
            row = [unguard_cell(c) for c in row]
            default = row[at_default].strip() if at_default is not None else ""
            out.append(Incoming(n, row[at_image].strip(), labels=split_labels(row[at_labels]),
                                has_labels=True, default=default or None))
    except csv.Error as exc:
        raise ImportFileError(f"bad CSV at line {reader.line_num}: {exc}") from None
    return out
