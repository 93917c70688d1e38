"""expiry reminders: each mail claimed, then sent

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pki.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("point", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=1024), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("claimed_at", pki.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", pki.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["certificate_id"], ["certificate.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("certificate_id", "window_days", name="uq_reminder_certificate_window"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_reminder_unsent", "reminder", ["sent_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_reminder_unsent", table_name="reminder")
    op.drop_table("reminder")
