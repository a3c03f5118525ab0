"""A big batch of plain creates on PostgreSQL, written while it is checked.

Checked whole and then written in one statement (``server.hub._fast_op``), a batch of 5,000
boxes kept the server busy checking for ~40 ms while PostgreSQL waited, then PostgreSQL busy
inserting for ~50 ms while the server waited. Here the batch goes in chunks inside one
transaction: each chunk is checked (``server.geometry.plain``: the same structure and policy
checks, the ids unique across chunks) and its rows sent, and the next chunk is checked while
PostgreSQL inserts the previous one. The op's log row, the image's count, the lease and the
resend check then go in the commit statement of the ordinary path (``_fast_op.commit``, no
objects left to insert), and the transaction commits: everything or nothing, as before.

Only what the ordinary path would write unchanged takes this way: a ``batch`` of only plain
``create`` ops, nothing else in it, no label to add to the label set. Whatever a chunk does not
pass (an invalid or clipped object, a taken id: the primary key's violation) rolls the
transaction back and sends the op down the ordinary path, which names what is wrong.
``tests/hub/test_stream_batch.py`` holds the two paths to the same rows and log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from server._edit_lease import OpenSpan, check_lease, touched
from server._object_store import ObjectWrites
from server._oplog import announce
from server._pg_writes import insert_columns, json_text
from server.edits import ImageRef, LogRow, creates_inverse, labeled_values
from server.geometry import TooCostly
from server.geometry.cost import VERTEX_COST, check_cost
from server.geometry.plain import PlainCreates, fits_policy, plain_creates
from server.hub import _fast_op  # its read and commit statements (it calls this module)
from server.hub._context import OpContext, SettingsCache
from server.hub.connection import Connection
from server.models import utcnow
from server.preferences import geometry_policy
from server.protocol import Ack, Op, encode

__all__ = ["CHUNK", "STREAM_MIN", "streamable", "write"]

#: Batches of at least this many creates take this path; smaller ones gain nothing from it.
STREAM_MIN = 1000
#: Creates checked and inserted at a time.
CHUNK = 1000

# The rows as labelhub_op_write inserts them (migrations/versions/0019 and 0021; the columns of
# ``server._pg_writes.INSERT_COLUMNS``): $1 image, $2 project, $3 user, $4 source, $5 now.
_INSERT = (
    "INSERT INTO objects (image_id, id, project_id, type, label, geometry, keypoints, "
    "attributes, rpy, occluded, z, version, source, created_by, updated_by, created_at, "
    "updated_at) "
    "SELECT $1, i.id, $2, i.type, i.label, i.geometry::json, i.keypoints::json, "
    "i.attributes::json, COALESCE(i.rpy::json, 'null'), i.occluded::boolean, i.z::integer, "
    "i.version::integer, COALESCE(i.source, $4), $3, $3, $5, $5 "
    "FROM unnest(" + ", ".join(f"($6::text[])[{k}:{k}]" for k in range(1, 12)) + ") "
    "AS i (id, type, label, geometry, keypoints, attributes, rpy, occluded, z, version, source)")


def streamable(op: Any) -> bool:
    """Whether ``op`` (client JSON) may take this path: a batch of many creates, nothing else
    in it (no ``sources``). The chunks' checks decide the rest."""
    return (isinstance(op, dict) and op.get("kind") == "batch" and len(op) == 2
            and isinstance(ops := op.get("ops"), list) and len(ops) >= STREAM_MIN)


async def write(driver: Any, conn: Connection, msg: Op, *, cache: SettingsCache,
                idle_limit: float,
                check_context: Callable[[Connection, OpContext | None, int], OpContext],
                ) -> tuple[ObjectWrites, str, OpContext, ImageRef, OpenSpan | None] | None:
    """Check and write the batch ``msg.op`` (:func:`streamable`); the ack is sent. ``None``
    when nothing was written and the ordinary path must take the op. Otherwise (the writes, the
    new stamp, the context, the image and the labeling session after it) for the held state.
    Raises the request's error as ``_fast_op.run`` does (context, lease) before any write."""
    assert conn.project_id is not None
    ops: list[Any] = msg.op["ops"]
    begun = await _fast_op.read(driver, user_id=conn.user_id, project_id=conn.project_id,
                       image_id=msg.image, client_op_id=msg.client_op_id, object_ids=set(),
                       cache=cache)
    ctx = check_context(conn, begun.context if begun else None, msg.image)
    image = ctx.image
    assert image is not None
    if ctx.duplicate_seq is not None or ctx.settings.synchronize_labels:
        return None  # a resend's ack, labels to add to the set: the ordinary path's
    span = check_lease(ctx.lease, conn.user_id, msg.token, utcnow())
    policy = geometry_policy(ctx.settings, image.width, image.height)
    try:
        check_cost(VERTEX_COST * len(ops), image.width, image.height)
    except TooCostly:
        return None
    if len(ops) > policy.max_batch_ops or image.object_count + len(ops) > policy.max_objects:
        return None
    now = utcnow()
    writes = ObjectWrites(image_id=image.id, project_id=conn.project_id, user_id=conn.user_id,
                          source="manual", now=now)
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    transaction = driver.transaction()
    await transaction.start()
    inserting: asyncio.Task[Any] | None = None
    try:
        for start in range(0, len(ops), CHUNK):
            chunk = plain_creates({"kind": "batch", "ops": ops[start:start + CHUNK]})
            if chunk is None or not fits_policy(chunk.objects, policy, seen,
                                                image.object_count + start):
                await _undo(transaction, inserting)
                return None
            rows = []
            for o in chunk.objects:
                o["source"] = "manual"  # the logged op's objects carry their source
                rows.append({**o, "version": 1})
                seen.add(o["id"])
            checked += chunk.data["ops"]
            writes.inserts += rows
            if inserting is not None:
                await inserting
            inserting = asyncio.ensure_future(driver.execute(
                _INSERT, image.id, conn.project_id, conn.user_id, "manual", now,
                insert_columns(rows)))
            await asyncio.sleep(0)  # let it go out: the next chunk is checked meanwhile
        op = PlainCreates({"kind": "batch", "ops": checked}, [c["object"] for c in checked])
        done = await _commit(driver, conn, msg, op, writes, ctx, span, idle_limit, inserting)
        inserting = None
    except asyncpg.UniqueViolationError:
        await _undo(transaction, inserting)  # an id taken: the ordinary path says so
        return None
    except BaseException:
        await _undo(transaction, inserting)
        raise
    if done is None:
        await _undo(transaction, None)
        return None
    await transaction.commit()
    stamp, log, seq, image_after, span_after = done
    announce(conn.project_id, seq, [log.logged(seq)])
    conn.send(encode(Ack(id=msg.id, seq=seq)))
    return writes, stamp, ctx, image_after, span_after


async def _undo(transaction: Any, inserting: asyncio.Task[Any] | None) -> None:
    if inserting is not None:
        try:
            await inserting
        except asyncpg.PostgresError:
            pass  # rolled back below
    await transaction.rollback()


async def _commit(driver: Any, conn: Connection, msg: Op, op: PlainCreates,
                  writes: ObjectWrites, ctx: OpContext, span: OpenSpan | None, idle_limit: float,
                  inserting: asyncio.Task[Any] | None,
                  ) -> tuple[str, LogRow, int, ImageRef, OpenSpan | None] | None:
    """The log row, the image and the labeling session, checked and written by the ordinary
    path's commit statement (no objects left to insert) once the last chunk's insert is done:
    the log row's JSON is made while it runs. ``None``: the commit found something changed."""
    assert conn.project_id is not None and ctx.image is not None
    image = ctx.image
    ids = op.ids()
    log = LogRow(project_id=conn.project_id, seq=0, image_id=image.id, user_id=conn.user_id,
                 kind="batch", op=op.data, inverse=creates_inverse(ids), client_op_id=msg.client_op_id,
                 origin="edit", reverts_seq=None, created_at=utcnow())
    op_text = json_text(op.data)
    if inserting is not None:
        await inserting
    count_before = image.object_count
    image.object_count += len(ids)
    touched_span = touched(span, writes.now, idle_limit)
    labeled = labeled_values(image, count_before, conn.user_id, log.created_at)
    if conn.needs_verify():  # a revocation came while this ran: the transaction path checks
        image.object_count = count_before
        return None
    empty = ObjectWrites(image_id=image.id, project_id=conn.project_id, user_id=conn.user_id,
                         source=writes.source, now=writes.now)
    outcome = await _fast_op.commit(
        driver, token=msg.token, now=writes.now, writes=empty, expected={},
        count_delta=len(ids), labeled=labeled, log=log,
        span_id=span.id if span and touched_span else None,
        span_last_activity=touched_span.last_activity_at if touched_span else None,
        span_active_seconds=touched_span.active_seconds if touched_span else None, stamp=None,
        op_text=op_text)
    if outcome.status != "ok":
        image.object_count = count_before
        return None
    assert outcome.seq is not None and outcome.stamp is not None
    if "labeled_at" in labeled:
        image.labeled_at, image.labeled_by = labeled["labeled_at"], labeled["labeled_by"]
    if span is not None and touched_span is not None:
        span = OpenSpan(span.id, touched_span)
    return outcome.stamp, log, outcome.seq, image, span

