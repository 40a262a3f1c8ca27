"""NAT detection per receiving number, media encryption per SIP target

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('receiving_numbers') as batch:
        batch.add_column(sa.Column('nat', sa.String(length=8), nullable=False, server_default='auto'))
    with op.batch_alter_table('sip_targets') as batch:
        # NULL: follow the URI (SRTP on sips:/transport=tls, plain RTP otherwise), as before.
        batch.add_column(sa.Column('media_encryption', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sip_targets') as batch:
        batch.drop_column('media_encryption')
    with op.batch_alter_table('receiving_numbers') as batch:
        batch.drop_column('nat')
