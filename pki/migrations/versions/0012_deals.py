"""The desk's deals: a request's type and the certificate it concerns

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_request") as batch:
        batch.add_column(sa.Column("deal", sa.String(length=32), nullable=False, server_default="new"))
        batch.add_column(sa.Column("subject_certificate_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("deal_reason", sa.String(length=32), nullable=False, server_default=""))
        batch.add_column(sa.Column("deal_comment", sa.String(length=500), nullable=False, server_default=""))
        batch.create_foreign_key(
            "fk_request_subject_certificate", "certificate", ["subject_certificate_id"], ["id"]
        )
        batch.create_index("ix_request_subject_certificate", ["subject_certificate_id"])


def downgrade() -> None:
    with op.batch_alter_table("certificate_request") as batch:
        batch.drop_index("ix_request_subject_certificate")
        batch.drop_constraint("fk_request_subject_certificate", type_="foreignkey")
        batch.drop_column("deal_comment")
        batch.drop_column("deal_reason")
        batch.drop_column("subject_certificate_id")
        batch.drop_column("deal")
