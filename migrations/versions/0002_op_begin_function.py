"""labelhub_op_begin: an edit's reads, lease lock and seq in one round trip (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:15:00

On PostgreSQL a socket edit used to spend three round trips before it could write: the context
(account, privileges, settings, image, resend check, the image's lease locked), the project's
next seq (which locks the project row) and the objects the op touches. Each costs a few hundred
microseconds of client CPU and a wake-up of the backend, more than PostgreSQL spends on them.
This function does the three in the same order in one call: lease row lock, context, project row
lock and seq, then the objects. A VOLATILE PL/pgSQL function takes a fresh snapshot for each
query, so the objects are read after the project row is locked, as before (a concurrent label
rename commits either entirely before them or waits for this transaction).

The seq is taken only when the op can go ahead (active account, existing image, not a resend,
the sender holds the lease); the caller rolls back on any refusal, which gives the seq back.
SQLite keeps the statement-by-statement path.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION labelhub_op_begin(
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
    o_attributes jsonb, o_rpy jsonb, o_occluded boolean, o_z integer, o_version integer)
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

    RETURN QUERY
    SELECT ctx.is_active, ctx.is_admin, ctx.user_settings, ctx.privileges, ctx.member_settings,
           ctx.project_settings, ctx.image_id, ctx.width, ctx.height, ctx.object_count,
           ctx.labeled_by, ctx.labeled_at, ctx.duplicate_seq,
           lease.holder_id, lease.connection_id, lease.token, lease.expires_at,
           lease.span_id, lease.started_at, lease.last_activity_at, lease.active_seconds,
           next_seq,
           objects.id, objects.type, objects.label, objects.geometry, objects.keypoints,
           objects.attributes, objects.rpy, objects.occluded, objects.z, objects.version
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN objects
             ON next_seq IS NOT NULL AND objects.image_id = p_image
            AND (p_ids IS NULL OR objects.id = ANY (p_ids));
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS labelhub_op_begin(integer, integer, integer, varchar, varchar[])")
