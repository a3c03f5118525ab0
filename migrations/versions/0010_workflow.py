"""image workflow states and assignments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:20:00

``images.state`` (new / in_progress / done / accepted / rejected, see ``server/workflow.py``)
with who marked it done, who reviewed it and the review's comment; ``image_assignments``: the
person a manager gave an image to. Existing images start ``new``, or ``in_progress`` when
somebody already held their lock to label them (labels given at upload or imported are not work).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, no batch mode: on SQLite batch mode copies `images` and drops the old
    # table, and with foreign keys on (as the app's connections have them) that drop cascades to
    # every row referencing an image — objects, labels, sessions. So done_by / reviewed_by carry
    # no foreign key (server/models/projects.py says why).
    op.add_column('images', sa.Column('state', sa.String(length=16), server_default='new',
                                      nullable=False))
    op.add_column('images', sa.Column('state_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('images', sa.Column('done_by', sa.Integer(), nullable=True))
    op.add_column('images', sa.Column('reviewed_by', sa.Integer(), nullable=True))
    op.add_column('images', sa.Column('review_comment', sa.Text(), nullable=True))
    op.create_index('ix_images_project_state', 'images', ['project_id', 'state'], unique=False)
    # Somebody held the image's lock to work on it: in progress. Upload tags and imports are not.
    images = sa.table('images', sa.column('id', sa.Integer()), sa.column('state', sa.String()))
    spans = sa.table('labeling_sessions', sa.column('image_id', sa.Integer()))
    op.get_bind().execute(images.update().where(
        sa.exists().where(spans.c.image_id == images.c.id)).values(state='in_progress'))

    op.create_table('image_assignments',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('assigned_by', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by'], ['users.id'], name=op.f('fk_image_assignments_assigned_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_assignments_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_image_assignments_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_image_assignments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', name=op.f('pk_image_assignments'))
    )
    op.create_index('ix_image_assignments_project_user', 'image_assignments',
                    ['project_id', 'user_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_images_project_state', table_name='images')
    op.drop_index('ix_image_assignments_project_user', table_name='image_assignments')
    op.drop_table('image_assignments')
    # Plain DROP COLUMNs (SQLite >= 3.35), for the reason upgrade() gives.
    for column in ('review_comment', 'reviewed_by', 'done_by', 'state_at', 'state'):
        op.drop_column('images', column)
