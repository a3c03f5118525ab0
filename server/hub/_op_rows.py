"""A committed op's row in its NOTIFY payload, so other processes fan it out without a read.

Every op commit rings the payload-free doorbell (``server._oplog.DOORBELL_CHANNEL``) from inside
``labelhub_op_commit``. The edit path's statement (``server.hub._fast_op``) also sends, in the
same statement and so in the same transaction, the row itself on :data:`ROW_CHANNEL` when it
fits a NOTIFY payload (PostgreSQL refuses 8,000 bytes and more). PostgreSQL delivers a
transaction's notifications together, in the order they were sent, and only if it commits:
a listener hears the doorbell, then the row, from the same backend. ``server.hub.bus.PgBus``
pairs them (a doorbell followed by its row needs no read) and the hub delivers the row when its
seq is the next one; anything else (no row, a gap, a catch-up in flight) is read from the log.

:data:`PROCESS_TAG` marks the rows this process committed: their hub delivered them already and
only settles its count of own doorbells (``Hub.heard_row``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from server._oplog import LoggedOp

__all__ = ["PAYLOAD_LIMIT", "PROCESS_TAG", "ROW_CHANNEL", "ROW_NOTIFY", "HeardRow", "parse_row"]

#: PostgreSQL channel of committed rows (the doorbell channel stays payload-free).
ROW_CHANNEL = "labelhub_op_rows"
#: This process's rows carry it (one per process, as the commit callbacks of ``server._oplog``).
PROCESS_TAG = uuid.uuid4().hex[:12]
#: PostgreSQL's limit: a payload must be shorter than this many bytes.
PAYLOAD_LIMIT = 8000

# The row as JSON, from labelhub_op_commit's own arguments (p_user $1, p_project $2, p_image $3,
# p_client_op_id $6, p_kind $15, p_op $16 as text, p_origin $19), the seq it returned (``r``)
# and the process tag (hex digits, so a plain literal). ``json`` (not ``jsonb``) keeps the op's
# text as the server sent it.
_PAYLOAD = (f"json_build_object('t', '{PROCESS_TAG}'::text, 'p', $2::integer, 's', r.seq, "
            "'i', $3::integer, "
            "'u', $1::integer, 'k', $15::text, 'c', $6::text, 'o', $19::text, "
            "'op', $16::text::json)::text")
#: Select-list item for a statement ``... FROM labelhub_op_commit(...) AS r``: sends the row
#: when the commit succeeded and the payload fits (otherwise the doorbell alone rings).
ROW_NOTIFY = (f"CASE WHEN r.status = 'ok' AND octet_length({_PAYLOAD}) < {PAYLOAD_LIMIT} "
              f"THEN pg_notify('{ROW_CHANNEL}', {_PAYLOAD}) END")


@dataclass(frozen=True, slots=True)
class HeardRow:
    """A row heard on :data:`ROW_CHANNEL`: who committed it (``tag``), its project and row."""

    tag: str
    project_id: int
    entry: LoggedOp


def parse_row(payload: str) -> HeardRow | None:
    """The row of a :data:`ROW_CHANNEL` payload; ``None`` for anything malformed (the
    doorbell that came with it then stands, and the log is read)."""
    try:
        row = json.loads(payload)
        if not isinstance(row.get("op"), dict):
            return None
        entry = LoggedOp(seq=int(row["s"]), image_id=row["i"], user_id=row["u"],
                         kind=str(row["k"]), op=row["op"], client_op_id=row["c"],
                         origin=str(row["o"]))
        return HeardRow(str(row["t"]), int(row["p"]), entry)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
