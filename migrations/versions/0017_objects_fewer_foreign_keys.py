"""objects keeps only its image's foreign key; op_log's big JSON compressed with lz4 (PostgreSQL)

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-02 17:00:00

PostgreSQL checks every foreign key of every inserted row with a query of its own: creating
5,000 objects in one batch cost its backend ~340 ms of CPU with the four keys of ``objects``
and ~210 ms with the image's alone (docs/performance.md, "Bulk edits"). Three of them protect
nothing the application relies on:

* ``project_id -> projects``: an object's project is its image's (every writer copies it from
  the image), and deleting a project deletes its images, which deletes their objects through
  the image key that stays (``ON DELETE CASCADE`` both ways: tests/server/test_projects.py).
* ``created_by`` / ``updated_by -> users`` (``ON DELETE SET NULL``): users are never deleted,
  only deactivated (``labelhub user deactivate``, the admin routes), so the keys never fire.

``op_log.op`` and ``inverse`` of a big batch are hundreds of KB of JSON each, compressed on
insert: lz4 (PostgreSQL 14+, when the server was built with it) took ~2/3 of pglz's time for a
5,000-box batch's row. Rows already written keep pglz (both are read alike). SQLite: the keys
go (batch mode rebuilds the table); it has no TOAST compression.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = (
    ("fk_objects_project_id_projects", "projects", ["project_id"], "CASCADE"),
    ("fk_objects_created_by_users", "users", ["created_by"], "SET NULL"),
    ("fk_objects_updated_by_users", "users", ["updated_by"], "SET NULL"),
)


def _lz4_available() -> bool:
    found = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
        "AND 'lz4' = ANY(enumvals)")).first()
    return found is not None


def upgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        for name, _table, _columns, _ondelete in _DROPPED:
            batch_op.drop_constraint(name, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql" and _lz4_available():
        op.execute("ALTER TABLE op_log ALTER COLUMN op SET COMPRESSION lz4, "
                   "ALTER COLUMN inverse SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql" and _lz4_available():
        op.execute("ALTER TABLE op_log ALTER COLUMN op SET COMPRESSION DEFAULT, "
                   "ALTER COLUMN inverse SET COMPRESSION DEFAULT")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        for name, table, columns, ondelete in _DROPPED:
            batch_op.create_foreign_key(name, table, columns, ["id"], ondelete=ondelete)
