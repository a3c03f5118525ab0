"""Object sources on the edit path: labelhub_op_read / _begin return them, _write writes them

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 19:40:00

An edit now knows where each object it touches came from (``objects.source``): a person's edit
of a model's object makes it ``manual`` and its inverse puts ``auto`` back (server/_sources.py).
The two read functions return the column as ``o_source`` (a new result column: the functions
are dropped and created again), and labelhub_op_write takes an optional ``source`` per updated
or inserted object (absent: the row's own, or ``p_source`` for a new one, as before). Otherwise
the definitions are 0015's read, 0002's begin and 0002's write, unchanged. SQLite has no such
functions: server/_object_store.py writes the column there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations._previous import previous

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARGS = "(integer, integer, integer, varchar, varchar[])"

READ_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_read(
    p_user integer, p_project integer, p_image integer, p_client_op_id varchar, p_ids varchar[])
RETURNS TABLE (
    is_active boolean, is_admin boolean, user_settings jsonb, privileges integer,
    member_settings jsonb, project_settings jsonb,
    image_id integer, width integer, height integer, object_count integer,
    labeled_by integer, labeled_at timestamptz, duplicate_seq bigint,
    holder_id integer, connection_id varchar, token bigint, expires_at timestamptz,
    span_id integer, started_at timestamptz, last_activity_at timestamptz,
    active_seconds double precision,
    o_id varchar, o_type varchar, o_label varchar, o_geometry jsonb, o_keypoints jsonb,
    o_attributes jsonb, o_rpy jsonb, o_occluded boolean, o_z integer, o_source varchar,
    o_version integer)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
DECLARE
    wanted varchar;
BEGIN
    -- PL/pgSQL rather than SQL: each query's plan is kept for the session instead of being made
    -- again on every call (planning took three times as long as running it, measured). Those
    -- plans may date from when the tables were small, so the objects are read one primary-key
    -- lookup each: as one join against the id list, a plan made before a 10,000-object import
    -- hashed every object of the image (4 ms per edit, measured).
    RETURN QUERY
    SELECT users.is_active, users.is_admin, users.settings, memberships.privileges,
           memberships.settings, projects.settings,
           images.id, images.width, images.height, images.object_count,
           images.labeled_by, images.labeled_at,
           (SELECT op_log.seq FROM op_log
             WHERE op_log.user_id = p_user AND op_log.client_op_id = p_client_op_id),
           image_locks.holder_id, image_locks.connection_id, image_locks.token,
           image_locks.expires_at, labeling_sessions.id, labeling_sessions.started_at,
           labeling_sessions.last_activity_at, labeling_sessions.active_seconds,
           NULL::varchar, NULL::varchar, NULL::varchar, NULL::jsonb, NULL::jsonb, NULL::jsonb,
           NULL::jsonb, NULL::boolean, NULL::integer, NULL::varchar, NULL::integer
      FROM users
      JOIN projects ON projects.id = p_project
      LEFT JOIN memberships ON memberships.project_id = p_project AND memberships.user_id = p_user
      LEFT JOIN images ON images.id = p_image AND images.project_id = p_project
      LEFT JOIN image_locks ON image_locks.image_id = images.id
      LEFT JOIN labeling_sessions
             ON labeling_sessions.image_id = image_locks.image_id
            AND labeling_sessions.lock_token = image_locks.token
            AND labeling_sessions.ended_at IS NULL
     WHERE users.id = p_user;
    IF NOT FOUND THEN
        RETURN;  -- no such user: no rows at all
    END IF;
    -- Then one row per object found (only its o_ columns set): a few by primary-key lookups,
    -- many (a big batch) by one join, which any plan makes cheaper than thousands of lookups.
    IF coalesce(cardinality(p_ids), 0) <= 64 THEN
        FOREACH wanted IN ARRAY coalesce(p_ids, '{}'::varchar[]) LOOP
            RETURN QUERY
            SELECT NULL::boolean, NULL::boolean, NULL::jsonb, NULL::integer, NULL::jsonb, NULL::jsonb,
                   NULL::integer, NULL::integer, NULL::integer, NULL::integer, NULL::integer,
                   NULL::timestamptz, NULL::bigint, NULL::integer, NULL::varchar, NULL::bigint,
                   NULL::timestamptz, NULL::integer, NULL::timestamptz, NULL::timestamptz,
                   NULL::double precision,
                   objects.id, objects.type, objects.label, objects.geometry, objects.keypoints,
                   objects.attributes, objects.rpy, objects.occluded, objects.z, objects.source,
                   objects.version
              FROM objects
             WHERE objects.image_id = p_image AND objects.id = wanted;
        END LOOP;
    ELSE
        RETURN QUERY
        SELECT NULL::boolean, NULL::boolean, NULL::jsonb, NULL::integer, NULL::jsonb, NULL::jsonb,
               NULL::integer, NULL::integer, NULL::integer, NULL::integer, NULL::integer,
               NULL::timestamptz, NULL::bigint, NULL::integer, NULL::varchar, NULL::bigint,
               NULL::timestamptz, NULL::integer, NULL::timestamptz, NULL::timestamptz,
               NULL::double precision,
               objects.id, objects.type, objects.label, objects.geometry, objects.keypoints,
               objects.attributes, objects.rpy, objects.occluded, objects.z, objects.source,
                   objects.version
          FROM objects
         WHERE objects.image_id = p_image AND objects.id = ANY(p_ids);
    END IF;
END
$fn$
"""

BEGIN_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_begin(
    p_user integer, p_project integer, p_image integer, p_client_op_id varchar, p_ids varchar[])
RETURNS TABLE (
    is_active boolean, is_admin boolean, user_settings jsonb, privileges integer,
    member_settings jsonb, project_settings jsonb,
    image_id integer, width integer, height integer, object_count integer,
    labeled_by integer, labeled_at timestamptz, duplicate_seq bigint,
    holder_id integer, connection_id varchar, token bigint, expires_at timestamptz,
    span_id integer, started_at timestamptz, last_activity_at timestamptz,
    active_seconds double precision,
    seq bigint,
    o_id varchar, o_type varchar, o_label varchar, o_geometry jsonb, o_keypoints jsonb,
    o_attributes jsonb, o_rpy jsonb, o_occluded boolean, o_z integer, o_source varchar,
    o_version integer)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    lease record;
    ctx record;
    next_seq bigint;
BEGIN
    SELECT image_locks.holder_id, image_locks.connection_id, image_locks.token,
           image_locks.expires_at, labeling_sessions.id AS span_id, labeling_sessions.started_at,
           labeling_sessions.last_activity_at, labeling_sessions.active_seconds
      INTO lease
      FROM image_locks
      LEFT JOIN labeling_sessions
             ON labeling_sessions.image_id = image_locks.image_id
            AND labeling_sessions.lock_token = image_locks.token
            AND labeling_sessions.ended_at IS NULL
     WHERE image_locks.image_id = p_image
       FOR UPDATE OF image_locks;

    SELECT users.is_active, users.is_admin, users.settings AS user_settings,
           memberships.privileges, memberships.settings AS member_settings,
           projects.settings AS project_settings,
           images.id AS image_id, images.width, images.height, images.object_count,
           images.labeled_by, images.labeled_at,
           (SELECT op_log.seq FROM op_log
             WHERE op_log.user_id = p_user AND op_log.client_op_id = p_client_op_id) AS duplicate_seq
      INTO ctx
      FROM users
      JOIN projects ON projects.id = p_project
      LEFT JOIN memberships ON memberships.project_id = p_project AND memberships.user_id = p_user
      LEFT JOIN images ON images.id = p_image AND images.project_id = p_project
     WHERE users.id = p_user;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF ctx.is_active AND ctx.image_id IS NOT NULL AND ctx.duplicate_seq IS NULL
            AND lease.holder_id = p_user THEN
        UPDATE projects SET seq = projects.seq + 1 WHERE projects.id = p_project
        RETURNING projects.seq INTO next_seq;
        PERFORM pg_notify('labelhub_ops', '');
    END IF;

    -- One array of ids, never "p_ids IS NULL OR id = ANY (p_ids)": the plan cached for that
    -- would read every object of the image to find the one an edit touches.
    IF p_ids IS NULL AND next_seq IS NOT NULL THEN
        SELECT array_agg(objects.id) INTO p_ids FROM objects WHERE objects.image_id = p_image;
    END IF;
    RETURN QUERY
    SELECT ctx.is_active, ctx.is_admin, ctx.user_settings, ctx.privileges, ctx.member_settings,
           ctx.project_settings, ctx.image_id, ctx.width, ctx.height, ctx.object_count,
           ctx.labeled_by, ctx.labeled_at, ctx.duplicate_seq,
           lease.holder_id, lease.connection_id, lease.token, lease.expires_at,
           lease.span_id, lease.started_at, lease.last_activity_at, lease.active_seconds,
           next_seq,
           objects.id, objects.type, objects.label, objects.geometry, objects.keypoints,
           objects.attributes, objects.rpy, objects.occluded, objects.z, objects.source,
           objects.version
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN objects ON next_seq IS NOT NULL AND objects.image_id = p_image
                       AND objects.id = ANY (p_ids);
END
$fn$
"""

WRITE_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_write(
    p_project integer, p_image integer, p_user integer, p_source varchar, p_now timestamptz,
    p_deletes jsonb, p_updates jsonb, p_inserts jsonb,
    p_object_count integer, p_labeled_at timestamptz, p_labeled_by integer,
    p_seq bigint, p_kind varchar, p_op jsonb, p_inverse jsonb, p_client_op_id varchar,
    p_reverts_seq bigint, p_origin varchar, p_logged_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    oid varchar;
    o record;
BEGIN
    FOR oid IN SELECT jsonb_array_elements_text(p_deletes) LOOP
        DELETE FROM objects WHERE objects.image_id = p_image AND objects.id = oid;
    END LOOP;
    FOR o IN SELECT * FROM jsonb_to_recordset(p_updates) AS u (
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
    INSERT INTO objects (image_id, id, project_id, type, label, geometry, keypoints, attributes,
                         rpy, occluded, z, version, source, created_by, updated_by, created_at,
                         updated_at)
    SELECT p_image, i.id, p_project, i.type, i.label, i.geometry, i.keypoints, i.attributes,
           COALESCE(i.rpy, 'null'), i.occluded, i.z, i.version, COALESCE(i.source, p_source),
           p_user, p_user,
           p_now, p_now
      FROM jsonb_to_recordset(p_inserts) AS i (
            id varchar, type varchar, label varchar, geometry jsonb, keypoints jsonb,
            attributes jsonb, rpy jsonb, occluded boolean, z integer, version integer,
            source varchar);
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


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_read{_ARGS}")
        op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_begin{_ARGS}")
        op.execute(READ_FUNCTION)
        op.execute(BEGIN_FUNCTION)
        op.execute(WRITE_FUNCTION)


def downgrade() -> None:
    """0015's read, 0002's begin and write again."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_read{_ARGS}")
        op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_begin{_ARGS}")
        op.execute(previous("0015_bulk_op_functions.py").READ_FUNCTION)
        first = previous("0002_op_begin_function.py")
        op.execute(first.FUNCTION)
        op.execute(first.WRITE_FUNCTION)
