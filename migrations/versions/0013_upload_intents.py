"""upload intents: files an upload is writing, so a crash leaves no orphans; images by content

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-02 13:20:00

``upload_intents``: one row per content an upload is about to write to the store, committed
before the write and deleted in the transaction that inserts the image rows. A row that
outlives ``LABELHUB_UPLOAD_GRACE_SECONDS`` marks files of an upload that never committed (a
crash, a lost database): the sweep removes them unless an image holds that content.
``ix_images_sha256``: deletes, the sweep and the embedding jobs look images up by content
across projects.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('upload_intents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upload_intents'))
    )
    with op.batch_alter_table('upload_intents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_intents_token'), ['token'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_intents_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_upload_intents_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_sha256'))
    with op.batch_alter_table('upload_intents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_intents_created_at'))
        batch_op.drop_index(batch_op.f('ix_upload_intents_sha256'))
        batch_op.drop_index(batch_op.f('ix_upload_intents_token'))
    op.drop_table('upload_intents')
