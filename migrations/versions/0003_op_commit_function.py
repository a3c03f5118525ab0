"""labelhub_op_read / labelhub_op_commit: an edit in two statements, no open transaction (PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:40:00

With 0002 an edit took four round trips: BEGIN, labelhub_op_begin (which locks the lease and the
project row), labelhub_op_write, COMMIT. The project row stayed locked while the server applied
the geometry in Python and through two more round trips, so every op of a project queued behind
the previous one's whole conversation with the client process.

Here the edit is two autocommitted statements:

* labelhub_op_read reads what 0002's begin reads (account, privileges, settings, image, resend
  check, lease, the objects the op touches, with their versions) and locks nothing.
* The server checks and applies the op in memory.
* labelhub_op_commit then, in one statement and so in one transaction: locks the lease row and
  checks the fencing token again, checks for a resend again, takes the seq (locking the project
  row, the order every writer follows), checks that each object the op read still has the
  version it had (locking those rows), and makes the writes through labelhub_op_write, with the
  image's object count moved by the op's difference rather than set. Labeling time is recorded
  in the same statement.

Outcomes: ('ok', seq); ('lease', NULL) when the lease changed since the read; ('duplicate', seq)
when the resend landed meanwhile; a changed object raises SQLSTATE LH409, which rolls the whole
statement back (the seq too). The server then runs the op the 0002 way, inside one transaction,
which reports the exact refusal. SQLite keeps the statement-by-statement path.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Raised by labelhub_op_commit when an object changed since labelhub_op_read.
CONFLICT_SQLSTATE = "LH409"

READ_FUNCTION = """
CREATE OR REPLACE FUNCTION labelhub_op_read(
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
    -- Then one row per object found (only its o_ columns set).
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
END
$fn$
"""

COMMIT_FUNCTION = """
CREATE OR REPLACE FUNCTION labelhub_op_commit(
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

    -- After the project row: a label rename takes that row first, then the objects.
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
    # The unique (user_id, client_op_id) index leads with user_id, so this one only doubled the
    # writes; and with statistics taken while the log was small the planner chose it for the
    # resend check, then filtered every op of the user.
    op.drop_index("ix_op_log_user_id", table_name="op_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(READ_FUNCTION)
        op.execute(COMMIT_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS labelhub_op_commit(integer, integer, integer, bigint, "
                   "timestamptz, varchar, jsonb, varchar, jsonb, jsonb, jsonb, integer, "
                   "timestamptz, integer, varchar, jsonb, jsonb, bigint, varchar, timestamptz, "
                   "integer, timestamptz, double precision)")
        op.execute("DROP FUNCTION IF EXISTS labelhub_op_read(integer, integer, integer, varchar, "
                   "varchar[])")
    op.create_index("ix_op_log_user_id", "op_log", ["user_id"])
