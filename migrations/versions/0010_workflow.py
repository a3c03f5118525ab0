"""image workflow states and assignments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:20:00

``images.state`` (new / in_progress / done / accepted / rejected, see ``server/workflow.py``)
with who marked it done, who reviewed it and the review's comment; ``image_assignments``: the
person a manager gave an image to. Existing images start ``new``, or ``in_progress`` when
somebody already edited them (labels given at upload are not work done).
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
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), server_default='new',
                                      nullable=False))
        batch_op.add_column(sa.Column('state_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('done_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('review_comment', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_images_done_by_users'), 'users', ['done_by'],
                                    ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_images_reviewed_by_users'), 'users',
                                    ['reviewed_by'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_images_project_state', ['project_id', 'state'], unique=False)
    images = sa.table('images', sa.column('state', sa.String()),
                      sa.column('labeled_by', sa.Integer()))
    op.get_bind().execute(images.update().where(images.c.labeled_by.is_not(None))
                          .values(state='in_progress'))

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
    op.drop_index('ix_image_assignments_project_user', table_name='image_assignments')
    op.drop_table('image_assignments')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_project_state')
        batch_op.drop_constraint(batch_op.f('fk_images_reviewed_by_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_images_done_by_users'), type_='foreignkey')
        batch_op.drop_column('review_comment')
        batch_op.drop_column('reviewed_by')
        batch_op.drop_column('done_by')
        batch_op.drop_column('state_at')
        batch_op.drop_column('state')
