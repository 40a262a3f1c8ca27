"""PBX options of receiving numbers, OPTIONS pinging of targets and their health

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('receiving_numbers') as t:
        t.add_column(sa.Column('diversion', sa.Boolean(), server_default='1', nullable=False))
        t.add_column(sa.Column('request_uri_user', sa.String(length=16), server_default='target', nullable=False))
        t.add_column(sa.Column('forward_pai', sa.Boolean(), server_default='1', nullable=False))
        t.add_column(sa.Column('forward_identity', sa.Boolean(), server_default='1', nullable=False))
        t.add_column(sa.Column('forward_headers', sa.JSON(), nullable=True))
        t.add_column(sa.Column('sip_headers', sa.JSON(), nullable=True))
        t.add_column(sa.Column('transfer', sa.String(length=16), server_default='same_host', nullable=False))
        t.add_column(sa.Column('follow_redirects', sa.String(length=16), server_default='same_host',
                               nullable=False))
    with op.batch_alter_table('sip_targets') as t:
        t.add_column(sa.Column('options_ping', sa.Boolean(), server_default='0', nullable=False))
    op.create_table('target_health',
    sa.Column('target_id', sa.String(length=40), nullable=False),
    sa.Column('health', sa.String(length=8), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['target_id'], ['sip_targets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('target_id')
    )


def downgrade() -> None:
    op.drop_table('target_health')
    with op.batch_alter_table('sip_targets') as t:
        t.drop_column('options_ping')
    with op.batch_alter_table('receiving_numbers') as t:
        for name in ('follow_redirects', 'transfer', 'sip_headers', 'forward_headers', 'forward_identity',
                     'forward_pai', 'request_uri_user', 'diversion'):
            t.drop_column(name)
