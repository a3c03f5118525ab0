"""labelhub_op_read / labelhub_op_commit for big batches: set statements past 64 objects (PostgreSQL)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02 13:30:00

0003's functions read and check the objects an op touches one primary-key statement each, so a
plan made while the tables were small can never scan an image's objects for an ordinary edit.
A ``batch`` of 5,000 creates made that 5,000 lookups in the read and 5,000 ``SELECT ... FOR
UPDATE`` in the commit, most of the commit's time. Past 64 objects the read now joins the id
list once, and the commit locks the existing rows in one statement and compares every expected
version (``null``: must not exist) in another; 64 or fewer take the old path. Same arguments,
same outcomes (LH409 names one changed object). SQLite has no such functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations._previous import previous

revision: str = '0015'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
    o_attributes jsonb, o_rpy jsonb, o_occluded boolean, o_z integer, o_version integer)
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
           NULL::jsonb, NULL::boolean, NULL::integer, NULL::integer
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
                   objects.attributes, objects.rpy, objects.occluded, objects.z, objects.version
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
               objects.attributes, objects.rpy, objects.occluded, objects.z, objects.version
          FROM objects
         WHERE objects.image_id = p_image AND objects.id = ANY(p_ids);
    END IF;
END
$fn$
"""

COMMIT_FUNCTION = """CREATE OR REPLACE FUNCTION labelhub_op_commit(
    p_user integer, p_project integer, p_image integer, p_token bigint, p_now timestamptz,
    p_client_op_id varchar, p_expect jsonb, p_source varchar,
    p_deletes jsonb, p_updates jsonb, p_inserts jsonb, p_count_delta integer,
    p_labeled_at timestamptz, p_labeled_by integer,
    p_kind varchar, p_op jsonb, p_inverse jsonb, p_reverts_seq bigint, p_origin varchar,
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
    -- ones that exist, then compare every expected version at once.
    IF (SELECT count(*) FROM jsonb_object_keys(p_expect)) <= 64 THEN
        FOR expected IN SELECT key AS id, value AS version FROM jsonb_each(p_expect) LOOP
            SELECT objects.version INTO current_version FROM objects
             WHERE objects.image_id = p_image AND objects.id = expected.id FOR UPDATE;
            IF (NOT FOUND AND expected.version <> 'null'::jsonb)
                    OR (FOUND AND (expected.version = 'null'::jsonb
                                   OR current_version <> expected.version::integer)) THEN
                RAISE EXCEPTION 'object % changed since it was read', expected.id
                    USING ERRCODE = 'LH409';
            END IF;
        END LOOP;
    ELSE
        PERFORM 1 FROM objects
         WHERE objects.image_id = p_image
           AND objects.id IN (SELECT jsonb_object_keys(p_expect))
         ORDER BY objects.id FOR UPDATE;
        SELECT e.key INTO changed_id
          FROM jsonb_each(p_expect) AS e
          LEFT JOIN objects ON objects.image_id = p_image AND objects.id = e.key
         WHERE (objects.id IS NULL AND e.value <> 'null'::jsonb)
            OR (objects.id IS NOT NULL AND (e.value = 'null'::jsonb
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
    PERFORM labelhub_op_write(p_project, p_image, p_user, p_source, p_now, p_deletes, p_updates,
                              p_inserts, new_count, p_labeled_at, p_labeled_by, next_seq, p_kind,
                              p_op, p_inverse, p_client_op_id, p_reverts_seq, p_origin,
                              p_logged_at);
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


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(READ_FUNCTION)
        op.execute(COMMIT_FUNCTION)


def downgrade() -> None:
    """0003's definitions again (same signatures: CREATE OR REPLACE)."""
    if op.get_bind().dialect.name == "postgresql":
        first = previous("0003_op_commit_function.py")
        op.execute(first.READ_FUNCTION)
        op.execute(first.COMMIT_FUNCTION)
