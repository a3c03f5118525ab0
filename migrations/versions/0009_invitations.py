"""invitations; display names for every user

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:50:00

``invitations``: one-time, expiring invitations to make an account or join a project (only a
SHA-256 of the token is kept). Display names are required from now on: users without one get
the local part of their email.
(Chained after 0008 when integ, which has it, was merged into this branch.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('privileges', sa.Integer(), nullable=True),
    sa.Column('invited_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invited_by'], ['users.id'], name=op.f('fk_invitations_invited_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_invitations_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitations_token_hash'))
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitations_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitations_project_id'), ['project_id'], unique=False)

    # Names are shown wherever people appear; nobody is left without one.
    users = sa.table('users', sa.column('id', sa.Integer()), sa.column('email', sa.String()),
                     sa.column('name', sa.String()))
    bind = op.get_bind()
    nameless = bind.execute(sa.select(users.c.id, users.c.email).where(
        sa.func.trim(sa.func.coalesce(users.c.name, '')) == '')).all()
    for user_id, email in nameless:
        local = (email.partition('@')[0] or email)[:200]
        bind.execute(users.update().where(users.c.id == user_id).values(name=local))


def downgrade() -> None:
    # The names given by upgrade() stay: they are valid names.
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitations_project_id'))
        batch_op.drop_index(batch_op.f('ix_invitations_email'))
    op.drop_table('invitations')
