"""labelhub_op_stamp and a labelhub_op_commit that checks it: an edit without its read (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:00:00

With 0003 every edit reads its context and objects (labelhub_op_read) before it commits. A
labeler editing one image sends op after op whose context is what the previous op left behind,
so the server keeps that state per connection (server/hub/_fast_op.py) and commits straight
away. The commit must then prove that the state it was computed from is still current:

* labelhub_op_stamp(user, project, image) is a digest of every input of an edit that is not an
  object and not the lease: the account (active, admin, settings), the membership (privileges,
  settings), the project's settings, the image's count and "last labeled", and the open labeling
  session of the image's lease (its id, last activity and active time).
* labelhub_op_commit with a 24th argument, the stamp the server computed from, locks the lease
  row (every edit of the image takes it first), compares the stamp, and returns ('stale', NULL,
  NULL) without writing when it differs; otherwise it runs 0003's commit, which checks the fencing
  token, the resend and each touched object's version (an id the server believes absent is
  checked to be absent). It returns the stamp after the writes, which the server keeps for the
  next edit. With a NULL stamp nothing is compared (the edit read its context just now).

The 23-argument function of 0003 stays as it is; this one calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMP_FUNCTION = """
CREATE OR REPLACE FUNCTION labelhub_op_stamp(p_user integer, p_project integer, p_image integer)
RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    digest text;
BEGIN
    -- PL/pgSQL so the plan is kept for the session. Times as epoch numbers: their text form
    -- would depend on the session's TimeZone. The lease's expiry is left out on purpose: a
    -- heartbeat moves it, and the commit checks it anyway.
    SELECT md5(row(users.is_active, users.is_admin, users.settings, memberships.privileges,
                   memberships.settings, projects.settings, images.id, images.object_count,
                   images.labeled_by, extract(epoch FROM images.labeled_at), image_locks.token,
                   labeling_sessions.id, extract(epoch FROM labeling_sessions.last_activity_at),
                   labeling_sessions.active_seconds)::text)
      INTO digest
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
    RETURN digest;
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

_COMMIT_SIGNATURE = (
    "integer, integer, integer, bigint, timestamptz, varchar, jsonb, varchar, jsonb, jsonb, "
    "jsonb, integer, timestamptz, integer, varchar, jsonb, jsonb, bigint, varchar, timestamptz, "
    "integer, timestamptz, double precision, text")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(STAMP_FUNCTION)
        op.execute(COMMIT_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_commit({_COMMIT_SIGNATURE})")
        op.execute("DROP FUNCTION IF EXISTS labelhub_op_stamp(integer, integer, integer)")
