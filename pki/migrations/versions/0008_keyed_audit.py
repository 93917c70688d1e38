"""keyed audit records: the HMAC of each record's hash under the audit key, kept outside the database

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Records already written keep an empty MAC: `pkictl init` creates the key and a checkpoint that seals
    # them (audit verify reports them as written before the audit key).
    with op.batch_alter_table("audit_record") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("audit_record") as batch:
        batch.drop_column("mac")
