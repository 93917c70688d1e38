"""acceptance points (受理点): the point table, and the point of users, requests, parties and USB keys

Revision ID: 0009
Revises: 0008

A home made before points gets one point, 默认受理点 (province "": the center's own desk), and every request,
party and USB key it has is that point's; it keeps no stock yet (its keys were recorded when issued onto, so
acceptances there may name any model of tokens.toml until it takes keys in). Its users stay center users (no point): they see everything, as
before, until an admin places them at a point (`pkictl user set NAME --point POINT`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import pki.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_POINT = "默认受理点"  # pki.models.point.DEFAULT_POINT, frozen here as this revision wrote it
# (table, foreign key name, index name and columns)
_POINT_OF = (
    ("certificate_request", "fk_certificate_request_point", "ix_request_point_id", ["point_id", "id"]),
    ("party", "fk_party_point", "ix_party_point_id", ["point_id", "id"]),
    ("pki_user", "fk_pki_user_point", "ix_pki_user_point_id", ["point_id"]),
    ("usb_token", "fk_usb_token_point", "ix_usb_token_point_id", ["point_id"]),
)


def upgrade() -> None:
    point = op.create_table(
        "point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("province", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("stock_kept", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", pki.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["point.id"], name="fk_point_parent"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_point_parent_id", "point", ["parent_id"], unique=False)
    for table, fk, index, columns in _POINT_OF:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("point_id", sa.Integer(), nullable=True))
            if table == "usb_token":
                batch.add_column(sa.Column("transfer_to_id", sa.Integer(), nullable=True))
                batch.create_foreign_key("fk_usb_token_transfer_to", "point", ["transfer_to_id"], ["id"])
            batch.create_index(index, columns, unique=False)
            batch.create_foreign_key(fk, "point", ["point_id"], ["id"])
    op.bulk_insert(
        point,
        [
            {
                "name": DEFAULT_POINT,
                "province": "",
                "parent_id": None,
                "stock_kept": False,
                "created_at": datetime.now(UTC),
                "created_by": "system",
            }
        ],
    )
    default = sa.select(point.c.id).where(point.c.name == DEFAULT_POINT).scalar_subquery()
    for table in ("certificate_request", "party", "usb_token"):
        op.execute(sa.table(table, sa.column("point_id")).update().values(point_id=default))


def downgrade() -> None:
    for table, fk, index, _ in reversed(_POINT_OF):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(fk, type_="foreignkey")
            batch.drop_index(index)
            if table == "usb_token":
                batch.drop_constraint("fk_usb_token_transfer_to", type_="foreignkey")
                batch.drop_column("transfer_to_id")
            batch.drop_column("point_id")
    op.drop_index("ix_point_parent_id", table_name="point")
    op.drop_table("point")
