"""An object edit on PostgreSQL as two autocommitted statements (migrations/versions/0003).

:func:`run` is the whole edit, called by ``Handlers.op``. :func:`read` fetches what the op needs
(context, lease, the objects it touches with their versions) without locking anything; the hub
checks and applies the op in memory; :func:`commit` then checks the lease, the resend and the
versions again and writes everything, in one statement and therefore one transaction. The project
row is locked only for that statement, not while the server works between two round trips, and
there is no BEGIN or COMMIT to send. Both run on the pooled connection's asyncpg connection
(``server.db.driver_connection``): through SQLAlchemy's execution layer each call cost more
client CPU than PostgreSQL spends on it.

Everything variable travels as text (JSON for objects) or, the ids to read, as ``text[]``:
no parameter or column has a type asyncpg must look up on a fresh connection (``text[]`` is
one of the array types its core knows, unlike ``varchar[]``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from server._edit_lease import OpenSpan, check_lease, touched
from server._object_store import ROW_VALUES, ObjectWrites
from server._oplog import announce
from server._pg_writes import insert_columns, json_text
from server.db import driver_connection
from server.edits import (
    EditError,
    ImageRef,
    LogRow,
    apply_object_op,
    labeled_values,
    object_ids,
    parse_object_op,
)
from server.geometry import LabelObject
from server.geometry.plain import PlainCreates
from server.hub import _stream_batch
from server.hub._context import BegunOp, ObjectRow, OpContext, SettingsCache, to_context
from server.hub._op_rows import PAYLOAD_LIMIT, ROW_NOTIFY
from server.hub.connection import Connection
from server.models import utcnow
from server.protocol import Ack, Op, encode

#: SQLSTATE raised by labelhub_op_commit when an object changed since the read.
CONFLICT_SQLSTATE = "LH409"

_JSON_COLUMNS = ("user_settings", "member_settings", "project_settings", "o_geometry",
                 "o_keypoints", "o_attributes", "o_rpy")
_COLUMNS = (
    "is_active", "is_admin", "user_settings", "privileges", "member_settings", "project_settings",
    "image_id", "width", "height", "object_count", "labeled_by", "labeled_at", "duplicate_seq",
    "holder_id", "connection_id", "token", "expires_at", "span_id", "started_at",
    "last_activity_at", "active_seconds", "o_id", "o_type", "o_label", "o_geometry",
    "o_keypoints", "o_attributes", "o_rpy", "o_occluded", "o_z", "o_source", "o_version")
_READ = (
    "SELECT " + ", ".join(f"{c}::text" if c in _JSON_COLUMNS else c for c in _COLUMNS)
    + " FROM labelhub_op_read($1, $2, $3, $4, "
    "$5::text[]::varchar[])")
# The committed row rides along to other processes as a NOTIFY payload (server/hub/_op_rows.py),
# sent by this statement and therefore in its transaction: they need not read it back. An op
# whose text alone is over the payload limit cannot fit: its statement leaves the payload out
# (building it would parse the op's text twice, ~1 MB for a big batch) and the doorbell that
# labelhub_op_commit rings sends the listeners to the log. JSON goes as json, not jsonb
# (migration 0019).
_CALL = ("FROM labelhub_op_commit($1, $2, $3, $4, $5, $6, $7::text::json, $8, "
         "$9::text::json, $10::text::json, $11::text[], $12, $13, $14, $15, "
         "$16::text::json, $17::text::json, $18, $19, $20, $21, $22, $23, $24) AS r")
_COMMIT = f"SELECT r.status, r.seq, r.stamp, {ROW_NOTIFY} {_CALL}"
_COMMIT_LARGE = f"SELECT r.status, r.seq, r.stamp {_CALL}"


def _json_list(values: list[Any]) -> str:
    return json_text(values) if values else "[]"  # most edits leave two of the three empty


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


async def read(driver: Any, *, user_id: int, project_id: int, image_id: int,
               client_op_id: str | None, object_ids: set[str],
               cache: SettingsCache) -> BegunOp | None:
    """The op's context and objects (``seq`` is ``None``: ``commit`` takes it). ``None`` when
    the user no longer exists."""
    records = await driver.fetch(_READ, user_id, project_id, image_id, client_op_id,
                                 sorted(object_ids))
    if not records:
        return None
    rows = [SimpleNamespace(**{k: _loads(v) if k in _JSON_COLUMNS else v
                               for k, v in record.items()}) for record in records]
    objects = {r.o_id: ObjectRow(r.o_id, r.o_type, r.o_label, r.o_geometry, r.o_keypoints,
                                 r.o_attributes, r.o_rpy, r.o_occluded, r.o_z, r.o_source,
                                 r.o_version)
               for r in rows if r.o_id is not None}
    return BegunOp(to_context(rows[0], user_id, project_id, cache), None, objects)


@dataclass(frozen=True)
class Outcome:
    """``status``: ``ok`` (committed as ``seq``; ``stamp`` is the state it left), ``duplicate``
    (the resend landed as ``seq``), ``lease`` (the lease changed since the read), ``stale``
    (something the stamp covers changed) or ``conflict`` (an object did)."""

    status: str
    seq: int | None
    stamp: str | None = None


async def commit(driver: Any, *, token: int, now: datetime, writes: ObjectWrites,
                 expected: dict[str, int | None], count_delta: int, labeled: dict[str, Any],
                 log: LogRow, span_id: int | None, span_last_activity: datetime | None,
                 span_active_seconds: float | None, stamp: str | None,
                 op_text: str | None = None) -> Outcome:
    """Check the lease, the resend, the objects' versions (``expected``: the version read, or
    ``None`` for an id that did not exist) and, unless ``None``, the ``stamp`` of everything else
    the op was computed from, then write the objects, the image's count and "last labeled", the
    log row and the labeling session, in one statement. ``op_text``: ``log.op`` as JSON text,
    when the caller made it already."""
    op_text = json_text(log.op) if op_text is None else op_text
    if len(writes.inserts) > FEW_EXPECTED:
        # Their "must not exist" is the primary key's (labelhub_op_commit, migration 0019).
        expected = _without_inserted(expected, writes.inserts)
    try:
        record = await driver.fetchrow(
            _COMMIT_LARGE if len(op_text) >= PAYLOAD_LIMIT else _COMMIT,
            writes.user_id, writes.project_id, writes.image_id, token, now,
            log.client_op_id, json_text(expected), writes.source, _json_list(writes.deletes),
            _json_list(writes.updates), insert_columns(writes.inserts), count_delta,
            labeled.get("labeled_at"), labeled.get("labeled_by"), log.kind, op_text,
            None if log.inverse is None else json_text(log.inverse), log.reverts_seq,
            log.origin, log.created_at, span_id, span_last_activity, span_active_seconds, stamp)
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == CONFLICT_SQLSTATE:
            return Outcome("conflict", None)
        raise
    return Outcome(str(record["status"]), record["seq"], record["stamp"])


#: Past this many new objects an edit's commit leaves their "must not exist" to the primary
#: key (labelhub_op_commit's own threshold: migrations/versions/0019).
FEW_EXPECTED = 64


def _to_read(parsed: Any, ids: set[str]) -> set[str]:
    """The ids whose rows a first read fetches: none for a big batch of plain creates, whose
    "must not exist" the primary key checks in the commit (:data:`FEW_EXPECTED`). An id that
    exists after all makes the commit a conflict, and ``Handlers.op`` then reports it (a read
    after the held state's conflict asks for every id). Looking up 5,000 absent ids cost the
    read ~5 ms."""
    return set() if isinstance(parsed, PlainCreates) and len(ids) > FEW_EXPECTED else ids


def _without_inserted(expected: dict[str, int | None],
                      inserts: list[dict[str, Any]]) -> dict[str, int | None]:
    new = {values["id"] for values in inserts}
    return {oid: version for oid, version in expected.items()
            if version is not None or oid not in new}


@dataclass
class Held:
    """What the connection's last edit left of the image it edits: the next edit of that image
    under the same token starts from here instead of reading it again. Nothing here is trusted:
    the commit checks the lease, each object's version (an id missing here is checked to be
    missing) and ``stamp``, a digest of all the rest, and any difference sends the op back to
    the read."""

    image_id: int
    token: int
    stamp: str
    context: OpContext
    image: ImageRef
    span: OpenSpan | None
    objects: OrderedDict[str, ObjectRow] = field(default_factory=OrderedDict)
    parsed: dict[str, LabelObject] = field(default_factory=dict)  # some of ``objects``, parsed

    def update(self, writes: ObjectWrites, stamp: str) -> None:
        self.stamp = stamp
        changed = [*writes.updates, *writes.inserts]
        # Only the last OBJECTS_HELD changes could stay held: a big batch builds no rows for the
        # rest (building then evicting them cost a 5,000-create batch ~1/10 of its time).
        skip = max(0, len(changed) - OBJECTS_HELD)
        for oid in (*writes.deletes, *(values["id"] for values in changed[:skip])):
            self.objects.pop(oid, None)
            self.parsed.pop(oid, None)
        for values in changed[skip:]:
            oid = values["id"]
            self.objects.pop(oid, None)
            self.objects[oid] = ObjectRow._make(
                (oid, *(values[k] for k in ROW_VALUES), values["version"]))
            if (obj := writes.parsed.get(oid)) is not None:
                self.parsed[oid] = obj
        while len(self.objects) > OBJECTS_HELD:
            self.parsed.pop(self.objects.popitem(last=False)[0], None)


#: Objects a connection keeps of the image it edits (the most recently edited ones).
OBJECTS_HELD = 256


async def run(conn: Connection, msg: Op, *, engine: AsyncEngine, cache: SettingsCache,
              idle_limit: float,
              check_context: Callable[[Connection, OpContext | None, int], OpContext]) -> bool:
    """An object op naming its objects; the ack is sent. With what the connection's previous
    edit of the image left (:class:`Held`) it is applied and committed at once; otherwise, or
    when that commit finds anything changed, :func:`read`, apply in memory, :func:`commit`.
    False when the op must take the one-transaction path instead (``Handlers.op``): another
    kind of op, label sync to do, or the lease or an object changed between the two statements
    (that path then reports exactly what is wrong). ``check_context`` raises the request's
    error (inactive account, no privilege, no such image)."""
    if _stream_batch.streamable(msg.op) and conn.project_id is not None and not conn.needs_verify():
        conn.held = None
        async with driver_connection(engine) as driver:
            streamed = await _stream_batch.write(driver, conn, msg, cache=cache,
                                                 idle_limit=idle_limit,
                                                 check_context=check_context)
        if streamed is None:
            return False
        writes, stamp, ctx, image, span = streamed
        conn.held = Held(msg.image, msg.token, "", ctx, image, span)
        conn.held.update(writes, stamp)
        return True
    try:
        parsed = parse_object_op(msg.op)
    except EditError:
        return False  # reported by the transaction path, after the privilege and lease checks
    ids = object_ids(parsed) if parsed is not None else None
    if ids is None or conn.project_id is None or conn.needs_verify():
        return False
    held, conn.held = conn.held, None
    async with driver_connection(engine) as driver:
        tried_held = False
        if held is not None and held.image_id == msg.image and held.token == msg.token:
            tried_held = True
            objects = {oid: row for oid in ids if (row := held.objects.get(oid)) is not None}
            try:
                done = await _edit(driver, conn, msg, parsed, ids, held.context, held.span,
                                   copy(held.image), objects, held.stamp, idle_limit,
                                   held.parsed)
            except EditError:
                done = None  # maybe an object this connection never read: read it
            if done is not None and done[0] in ("ok", "duplicate"):
                if done[1] is not None:
                    held.update(*done[1])
                conn.held = held
                return True
            if done is not None and done[0] == "sync":
                return False
        begun = await read(driver, user_id=conn.user_id, project_id=conn.project_id,
                           image_id=msg.image, client_op_id=msg.client_op_id,
                           object_ids=ids if tried_held else _to_read(parsed, ids),
                           cache=cache)
        ctx = check_context(conn, begun.context if begun else None, msg.image)
        assert begun is not None and ctx.image is not None
        if ctx.duplicate_seq is not None:
            conn.send(encode(Ack(id=msg.id, seq=ctx.duplicate_seq, duplicate=True)))
            return True
        span = check_lease(ctx.lease, conn.user_id, msg.token, utcnow())
        done = await _edit(driver, conn, msg, parsed, ids, ctx, span, ctx.image, begun.objects,
                           None, idle_limit)
    if done[0] not in ("ok", "duplicate"):
        return False
    if done[1] is not None:
        held = Held(msg.image, msg.token, "", ctx, done[2], done[3], OrderedDict(begun.objects))
        held.update(*done[1])
        conn.held = held
    return True


async def _edit(driver: Any, conn: Connection, msg: Op, parsed: Any, ids: set[str],
                ctx: OpContext, span: OpenSpan | None, image: ImageRef,
                objects: dict[str, ObjectRow], stamp: str | None, idle_limit: float,
                known: dict[str, LabelObject] | None = None,
                ) -> tuple[str, tuple[ObjectWrites, str] | None, ImageRef, OpenSpan | None]:
    """Apply the op to ``objects`` and commit it (the ack is sent on ``ok`` and ``duplicate``):
    (outcome, (writes, new stamp) when committed, the image and labeling session after it).
    ``sync``: the op adds labels to synchronize, which only the transaction path does."""
    assert conn.project_id is not None
    now = utcnow()
    count_before = image.object_count
    op, inverse, new_labels, writes = await apply_object_op(
        parsed, objects, project_id=conn.project_id, image=image, user_id=conn.user_id,
        settings=ctx.settings, origin="edit", parsed=known)
    if new_labels and ctx.settings.synchronize_labels:
        return "sync", None, image, span
    log = LogRow(project_id=conn.project_id, seq=0, image_id=image.id, user_id=conn.user_id,
                 kind=str(op.get("kind")), op=op, inverse=inverse, client_op_id=msg.client_op_id,
                 origin="edit", reverts_seq=None, created_at=utcnow())
    touched_span = touched(span, now, idle_limit)
    # The count travels as a difference, so "before" is given as the count itself here.
    labeled = labeled_values(image, image.object_count, conn.user_id, log.created_at)
    if conn.needs_verify():  # a revocation came while this ran: the transaction path checks
        return "verify", None, image, span
    outcome = await commit(
        driver, token=msg.token, now=now, writes=writes,
        expected={oid: (row.version if (row := objects.get(oid)) else None) for oid in ids},
        count_delta=image.object_count - count_before, labeled=labeled, log=log,
        span_id=span.id if span and touched_span else None,
        span_last_activity=touched_span.last_activity_at if touched_span else None,
        span_active_seconds=touched_span.active_seconds if touched_span else None, stamp=stamp)
    if outcome.status == "duplicate":
        assert outcome.seq is not None
        conn.send(encode(Ack(id=msg.id, seq=outcome.seq, duplicate=True)))
        return "duplicate", None, image, span
    if outcome.status != "ok":
        return outcome.status, None, image, span
    assert outcome.seq is not None and outcome.stamp is not None
    announce(conn.project_id, outcome.seq, [log.logged(outcome.seq)])
    conn.send(encode(Ack(id=msg.id, seq=outcome.seq)))
    if "labeled_at" in labeled:
        image.labeled_at, image.labeled_by = labeled["labeled_at"], labeled["labeled_by"]
    if span is not None and touched_span is not None:
        span = OpenSpan(span.id, touched_span)
    return "ok", (writes, outcome.stamp), image, span
