"""web UI: failed logins for throttling, request attachments, list indexes

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pki.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", pki.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failure_user_at", "login_failure", ["username", "at"])
    op.create_index("ix_login_failure_address_at", "login_failure", ["address", "at"])
    op.create_table(
        "request_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", pki.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["certificate_request.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_request_attachment_request_id", "request_attachment", ["request_id"])
    # The request list pages newest first within a filter (keyset on id).
    op.create_index("ix_request_province_id", "certificate_request", ["province", "id"])
    op.create_index("ix_request_access_type_id", "certificate_request", ["access_type", "id"])
    op.create_index("ix_request_entered_at_id", "certificate_request", ["entered_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_request_entered_at_id", table_name="certificate_request")
    op.drop_index("ix_request_access_type_id", table_name="certificate_request")
    op.drop_index("ix_request_province_id", table_name="certificate_request")
    op.drop_index("ix_request_attachment_request_id", table_name="request_attachment")
    op.drop_table("request_attachment")
    op.drop_index("ix_login_failure_address_at", table_name="login_failure")
    op.drop_index("ix_login_failure_user_at", table_name="login_failure")
    op.drop_table("login_failure")
