"""op_log's op and inverse as plain json; the edit functions take json and arrays; triggers for the image key (PostgreSQL)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 05:00:00

A batch creating 5,000 boxes hands PostgreSQL ~2 MB of JSON text: the objects to insert, the
op and its inverse for the log row, the versions expected. As ``jsonb`` every byte of it was
parsed into jsonb's binary form first (the op and inverse only to be stored, the objects only to
be taken apart again), most of the backend's time for such a batch (docs/performance.md, "Bulk
edits"). Here:

* ``op_log.op`` and ``op_log.inverse`` are ``json``: stored as the server wrote them (validated,
  not converted), read back alike. Nothing queries inside them (the log is read whole, by seq);
  json has no equality operator, which nothing uses either. The columns keep lz4 (0017).
* labelhub_op_write and labelhub_op_commit take their JSON arguments as ``json`` (the expected
  versions are read with ``json_each_text``: a JSON ``null``, "must not exist", reads as SQL
  NULL), and the objects to insert as a two-dimensional ``text[]``, one row per column
  (``server._pg_writes.INSERT_COLUMNS``), zipped by ``unnest``: only each object's own JSON
  values (geometry, keypoints, ...) are parsed, into the jsonb of their columns. Read from a
  JSON document, as before, the record set cost more than parsing the whole document (~35 ms
  of backend CPU for 5,000 boxes, against ~15 for the arrays, measured).

* ``objects.image_id -> images`` is kept by triggers instead of a foreign key: PostgreSQL checks
  a key with one query per inserted row (5,000 for such a batch, all for the same image, about a
  third of what remained of the backend's time); a statement-level trigger checks each image an
  insert names once, from the statement's transition table, and locks it ``FOR KEY SHARE`` as
  the key's check does (an image being deleted waits for the insert, or the insert sees it gone
  and fails with ``foreign_key_violation``, SQLSTATE 23503). Deleting images deletes their
  objects (the key's ``ON DELETE CASCADE``; a project's deletion cascades to its images and so
  here) by a statement-level trigger too; an update that moves an object to another image
  (nothing does) is checked by a row trigger, which fires only for updates naming
  ``image_id``. The model keeps the key
  (SQLite keeps it: its checks cost nothing like this); migrations/env.py leaves it out of the
  comparison on PostgreSQL. tests/server/test_object_image_key.py holds both databases to the
  same behaviour.

* A big batch's new objects (over 64) are not in the commit's expected versions (the server
  leaves them out): their "must not exist" is the primary key's, whose violation, raised inside
  the write, becomes the same conflict (LH409) as a version check's. That saves locking and
  looking up 5,000 absent ids twice.

Otherwise the definitions are those of 0018 (write), 0015 (the 23-argument commit) and 0004
(the 24-argument commit), unchanged but for the write's insert, skipped when there is nothing
to insert (the trigger fires per statement, rows or none), and the above. The old (jsonb) signatures are dropped: the server calls
these. The column change rewrites op_log once. SQLite: nothing changes (JSON is text there).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations._previous import previous

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _signature(json_type: str, inserts: str) -> tuple[str, str, str]:
    """(write, 23-argument commit, 24-argument commit) argument types with this JSON type and
    this type of the inserted objects."""
    j, i = json_type, inserts
    write = (f"integer, integer, integer, varchar, timestamptz, {j}, {j}, {i}, integer, "
             f"timestamptz, integer, bigint, varchar, {j}, {j}, varchar, bigint, varchar, "
             "timestamptz")
    commit = (f"integer, integer, integer, bigint, timestamptz, varchar, {j}, varchar, {j}, {j}, "
              f"{i}, integer, timestamptz, integer, varchar, {j}, {j}, bigint, varchar, "
              "timestamptz, integer, timestamptz, double precision")
    return write, commit, commit + ", text"


WRITE_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_write(
    p_project integer, p_image integer, p_user integer, p_source varchar, p_now timestamptz,
    p_deletes json, p_updates json, p_inserts text[],
    p_object_count integer, p_labeled_at timestamptz, p_labeled_by integer,
    p_seq bigint, p_kind varchar, p_op json, p_inverse json, p_client_op_id varchar,
    p_reverts_seq bigint, p_origin varchar, p_logged_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    oid varchar;
    o record;
BEGIN
    FOR oid IN SELECT json_array_elements_text(p_deletes) LOOP
        DELETE FROM objects WHERE objects.image_id = p_image AND objects.id = oid;
    END LOOP;
    FOR o IN SELECT * FROM json_to_recordset(p_updates) AS u (
            id varchar, type varchar, label varchar, geometry jsonb, keypoints jsonb,
            attributes jsonb, rpy jsonb, occluded boolean, z integer, version integer,
            source varchar) LOOP
        UPDATE objects
           SET type = o.type, label = o.label, geometry = o.geometry, keypoints = o.keypoints,
               attributes = o.attributes, rpy = COALESCE(o.rpy, 'null'), occluded = o.occluded,
               z = o.z, version = o.version, source = COALESCE(o.source, objects.source),
               updated_by = p_user, updated_at = p_now
         WHERE objects.image_id = p_image AND objects.id = o.id;
    END LOOP;
    -- The new objects come as one text column per row of a two-dimensional array
    -- (server/_pg_writes.py, INSERT_COLUMNS): each slice is one column, unnest zips them.
    IF cardinality(p_inserts) > 0 THEN
        INSERT INTO objects (image_id, id, project_id, type, label, geometry, keypoints,
                             attributes, rpy, occluded, z, version, source, created_by,
                             updated_by, created_at, updated_at)
        SELECT p_image, i.id, p_project, i.type, i.label, i.geometry::jsonb, i.keypoints::jsonb,
               i.attributes::jsonb, COALESCE(i.rpy::jsonb, 'null'), i.occluded::boolean,
               i.z::integer, i.version::integer, COALESCE(i.source, p_source),
               p_user, p_user, p_now, p_now
          FROM unnest(p_inserts[1:1], p_inserts[2:2], p_inserts[3:3], p_inserts[4:4],
                      p_inserts[5:5], p_inserts[6:6], p_inserts[7:7], p_inserts[8:8],
                      p_inserts[9:9], p_inserts[10:10], p_inserts[11:11])
               AS i (id, type, label, geometry, keypoints, attributes, rpy, occluded, z,
                     version, source);
    END IF;
    IF p_object_count IS NOT NULL OR p_labeled_at IS NOT NULL THEN
        UPDATE images
           SET object_count = COALESCE(p_object_count, images.object_count),
               labeled_at = COALESCE(p_labeled_at, images.labeled_at),
               labeled_by = COALESCE(p_labeled_by, images.labeled_by)
         WHERE images.id = p_image;
    END IF;
    INSERT INTO op_log (project_id, seq, image_id, user_id, kind, op, inverse, client_op_id,
                        reverts_seq, origin, created_at)
    VALUES (p_project, p_seq, p_image, p_user, p_kind, p_op, p_inverse, p_client_op_id,
            p_reverts_seq, p_origin, p_logged_at);
END
$fn$
"""

#: Raised by labelhub_op_commit when an object changed since labelhub_op_read (as in 0003).
CONFLICT_SQLSTATE = "LH409"

COMMIT_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_commit(
    p_user integer, p_project integer, p_image integer, p_token bigint, p_now timestamptz,
    p_client_op_id varchar, p_expect json, p_source varchar,
    p_deletes json, p_updates json, p_inserts text[], p_count_delta integer,
    p_labeled_at timestamptz, p_labeled_by integer,
    p_kind varchar, p_op json, p_inverse json, p_reverts_seq bigint, p_origin varchar,
    p_logged_at timestamptz,
    p_span_id integer, p_span_last_activity timestamptz, p_span_active_seconds double precision)
RETURNS TABLE (status varchar, seq bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    lease record;
    found_seq bigint;
    next_seq bigint;
    expected record;
    current_version integer;
    new_count integer;
    changed_id varchar;
    violated text;
BEGIN
    SELECT image_locks.holder_id, image_locks.token, image_locks.expires_at INTO lease
      FROM image_locks WHERE image_locks.image_id = p_image FOR UPDATE;
    IF NOT FOUND OR lease.holder_id IS DISTINCT FROM p_user OR lease.token <> p_token
            OR lease.expires_at IS NULL OR lease.expires_at <= p_now THEN
        RETURN QUERY SELECT 'lease'::varchar, NULL::bigint;
        RETURN;
    END IF;

    SELECT op_log.seq INTO found_seq FROM op_log
     WHERE op_log.user_id = p_user AND op_log.client_op_id = p_client_op_id;
    IF found_seq IS NOT NULL THEN
        RETURN QUERY SELECT 'duplicate'::varchar, found_seq;
        RETURN;
    END IF;

    UPDATE projects SET seq = projects.seq + 1 WHERE projects.id = p_project
    RETURNING projects.seq INTO next_seq;

    -- After the project row: a label rename takes that row first, then the objects. A few
    -- objects one primary-key lookup each; many (a big batch) in two set statements: lock the
    -- ones that exist, then compare every expected version at once. An expected version of
    -- JSON null (the object must not exist) reads as SQL NULL.
    IF (SELECT count(*) FROM json_object_keys(p_expect)) <= 64 THEN
        FOR expected IN SELECT key AS id, value AS version FROM json_each_text(p_expect) LOOP
            SELECT objects.version INTO current_version FROM objects
             WHERE objects.image_id = p_image AND objects.id = expected.id FOR UPDATE;
            IF (NOT FOUND AND expected.version IS NOT NULL)
                    OR (FOUND AND (expected.version IS NULL
                                   OR current_version <> expected.version::integer)) THEN
                RAISE EXCEPTION 'object % changed since it was read', expected.id
                    USING ERRCODE = 'LH409';
            END IF;
        END LOOP;
    ELSE
        PERFORM 1 FROM objects
         WHERE objects.image_id = p_image
           AND objects.id IN (SELECT json_object_keys(p_expect))
         ORDER BY objects.id FOR UPDATE;
        SELECT e.key INTO changed_id
          FROM json_each_text(p_expect) AS e
          LEFT JOIN objects ON objects.image_id = p_image AND objects.id = e.key
         WHERE (objects.id IS NULL AND e.value IS NOT NULL)
            OR (objects.id IS NOT NULL AND (e.value IS NULL
                                            OR objects.version <> e.value::integer))
         LIMIT 1;
        IF changed_id IS NOT NULL THEN
            RAISE EXCEPTION 'object % changed since it was read', changed_id
                USING ERRCODE = 'LH409';
        END IF;
    END IF;

    IF p_count_delta <> 0 THEN
        SELECT images.object_count + p_count_delta INTO new_count FROM images
         WHERE images.id = p_image;
    END IF;
    IF array_length(p_inserts, 2) > 64 THEN
        -- Over 64 new objects the server leaves their "must not exist" out of p_expect
        -- (server/hub/_fast_op.py): the primary key checks it, as a conflict.
        BEGIN
            PERFORM labelhub_op_write(p_project, p_image, p_user, p_source, p_now, p_deletes,
                                      p_updates, p_inserts, new_count, p_labeled_at,
                                      p_labeled_by, next_seq, p_kind, p_op, p_inverse,
                                      p_client_op_id, p_reverts_seq, p_origin, p_logged_at);
        EXCEPTION WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
            IF violated IS DISTINCT FROM 'pk_objects' THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'an object created here exists already' USING ERRCODE = 'LH409';
        END;
    ELSE
        PERFORM labelhub_op_write(p_project, p_image, p_user, p_source, p_now, p_deletes,
                                  p_updates, p_inserts, new_count, p_labeled_at, p_labeled_by,
                                  next_seq, p_kind, p_op, p_inverse, p_client_op_id,
                                  p_reverts_seq, p_origin, p_logged_at);
    END IF;
    IF p_span_id IS NOT NULL THEN
        UPDATE labeling_sessions
           SET last_activity_at = p_span_last_activity, active_seconds = p_span_active_seconds
         WHERE labeling_sessions.id = p_span_id;
    END IF;
    PERFORM pg_notify('labelhub_ops', '');
    RETURN QUERY SELECT 'ok'::varchar, next_seq;
END
$fn$
"""

STAMPED_COMMIT_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_commit(
    p_user integer, p_project integer, p_image integer, p_token bigint, p_now timestamptz,
    p_client_op_id varchar, p_expect json, p_source varchar,
    p_deletes json, p_updates json, p_inserts text[], p_count_delta integer,
    p_labeled_at timestamptz, p_labeled_by integer,
    p_kind varchar, p_op json, p_inverse json, p_reverts_seq bigint, p_origin varchar,
    p_logged_at timestamptz,
    p_span_id integer, p_span_last_activity timestamptz, p_span_active_seconds double precision,
    p_stamp text)
RETURNS TABLE (status varchar, seq bigint, stamp text)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    outcome record;
BEGIN
    IF p_stamp IS NOT NULL THEN
        -- The lease row first, as every edit of the image: nothing the stamp covers about the
        -- image can change between this comparison and the writes.
        PERFORM 1 FROM image_locks WHERE image_locks.image_id = p_image FOR UPDATE;
        IF labelhub_op_stamp(p_user, p_project, p_image) IS DISTINCT FROM p_stamp THEN
            RETURN QUERY SELECT 'stale'::varchar, NULL::bigint, NULL::text;
            RETURN;
        END IF;
    END IF;
    SELECT c.status, c.seq INTO outcome
      FROM labelhub_op_commit(p_user, p_project, p_image, p_token, p_now, p_client_op_id,
                              p_expect, p_source, p_deletes, p_updates, p_inserts, p_count_delta,
                              p_labeled_at, p_labeled_by, p_kind, p_op, p_inverse, p_reverts_seq,
                              p_origin, p_logged_at, p_span_id, p_span_last_activity,
                              p_span_active_seconds) AS c;
    RETURN QUERY SELECT outcome.status, outcome.seq,
        CASE WHEN outcome.status = 'ok' THEN labelhub_op_stamp(p_user, p_project, p_image) END;
END
$fn$
"""


#: The foreign key the triggers replace (migration 0001's name for it).
IMAGE_KEY = "fk_objects_image_id_images"

IMAGE_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION labelhub_objects_image_exists() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    missing integer;
BEGIN
    -- As the key's check: each image named, locked FOR KEY SHARE (a concurrent delete waits
    -- for this transaction, or has committed and the image is not found).
    PERFORM 1 FROM images WHERE images.id IN (SELECT DISTINCT added.image_id FROM added)
      ORDER BY images.id FOR KEY SHARE OF images;
    SELECT DISTINCT added.image_id INTO missing FROM added
     WHERE NOT EXISTS (SELECT 1 FROM images WHERE images.id = added.image_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "objects" violates the image key'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_objects_image_id_images',
                  DETAIL = format('Key (image_id)=(%s) is not present in table "images".',
                                  missing);
    END IF;
    RETURN NULL;
END
$fn$""",
    """CREATE TRIGGER labelhub_objects_image_exists AFTER INSERT ON objects
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION labelhub_objects_image_exists()""",
    """CREATE OR REPLACE FUNCTION labelhub_objects_image_moved() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM 1 FROM images WHERE images.id = NEW.image_id FOR KEY SHARE OF images;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "objects" violates the image key'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'fk_objects_image_id_images',
                  DETAIL = format('Key (image_id)=(%s) is not present in table "images".',
                                  NEW.image_id);
    END IF;
    RETURN NEW;
END
$fn$""",
    """CREATE TRIGGER labelhub_objects_image_moved BEFORE UPDATE OF image_id ON objects
    FOR EACH ROW WHEN (OLD.image_id IS DISTINCT FROM NEW.image_id)
    EXECUTE FUNCTION labelhub_objects_image_moved()""",
    """CREATE OR REPLACE FUNCTION labelhub_images_delete_objects() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM objects WHERE objects.image_id IN (SELECT gone.id FROM gone);
    RETURN NULL;
END
$fn$""",
    """CREATE TRIGGER labelhub_images_delete_objects AFTER DELETE ON images
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION labelhub_images_delete_objects()""",
)

DROP_IMAGE_TRIGGERS = (
    "DROP TRIGGER IF EXISTS labelhub_images_delete_objects ON images",
    "DROP TRIGGER IF EXISTS labelhub_objects_image_moved ON objects",
    "DROP TRIGGER IF EXISTS labelhub_objects_image_exists ON objects",
    "DROP FUNCTION IF EXISTS labelhub_images_delete_objects()",
    "DROP FUNCTION IF EXISTS labelhub_objects_image_moved()",
    "DROP FUNCTION IF EXISTS labelhub_objects_image_exists()",
)


def _drop_functions(json_type: str, inserts: str) -> None:
    write, commit, stamped = _signature(json_type, inserts)
    op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_commit({stamped})")
    op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_commit({commit})")
    op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_write({write})")


def _lz4_available() -> bool:
    found = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
        "AND 'lz4' = ANY(enumvals)")).first()
    return found is not None


def _log_columns(json_type: str) -> None:
    op.execute(f"ALTER TABLE op_log ALTER COLUMN op TYPE {json_type} USING op::text::{json_type}, "
               f"ALTER COLUMN inverse TYPE {json_type} USING inverse::text::{json_type}")
    if _lz4_available():  # as 0017 left them (a type change may reset it)
        op.execute("ALTER TABLE op_log ALTER COLUMN op SET COMPRESSION lz4, "
                   "ALTER COLUMN inverse SET COMPRESSION lz4")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_functions("jsonb", "jsonb")
        _log_columns("json")
        op.drop_constraint(IMAGE_KEY, "objects", type_="foreignkey")
        for statement in IMAGE_TRIGGERS:
            op.execute(statement)
        op.execute(WRITE_FUNCTION)
        op.execute(COMMIT_FUNCTION)
        op.execute(STAMPED_COMMIT_FUNCTION)


def downgrade() -> None:
    """The jsonb columns, and 0018's write, 0015's and 0004's commits again."""
    if op.get_bind().dialect.name == "postgresql":
        _drop_functions("json", "text[]")
        _log_columns("jsonb")
        for statement in DROP_IMAGE_TRIGGERS:
            op.execute(statement)
        op.create_foreign_key(IMAGE_KEY, "objects", "images", ["image_id"], ["id"],
                              ondelete="CASCADE")
        op.execute(previous("0018_object_sources_on_edits.py").WRITE_FUNCTION)
        op.execute(previous("0015_bulk_op_functions.py").COMMIT_FUNCTION)
        op.execute(previous("0004_op_commit_stamp.py").COMMIT_FUNCTION)
