"""web UI: failed logins for throttling, request attachments, list indexes (and, on PostgreSQL, a trigram
index for the unit-name search when pg_trgm is available)

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

import pki.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("pki.migrations")
# The unit-name substring search (LIKE '%…%') on PostgreSQL; not in the models, since it exists only where the
# pg_trgm extension could be had (tests/integration/test_schema.py leaves it out of the comparison).
UNIT_NAME_TRGM_INDEX = "ix_request_unit_name_trgm"


def _trigram_schema(conn: Connection) -> str | None:
    """The schema holding pg_trgm, creating the extension first when the connected role may.

    Tried inside a SAVEPOINT: a role without the right, a server without the contrib module, or another
    connection creating it at the same moment (``IF NOT EXISTS`` still races: the loser gets a unique
    violation) only rolls the savepoint back; the extension is then looked up again.
    """
    find = sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_trgm'"
    )
    schema = conn.execute(find).scalar_one_or_none()
    if schema is not None:
        return str(schema)
    savepoint = conn.begin_nested()
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    except sa.exc.DBAPIError as e:
        savepoint.rollback()
        log.warning("pg_trgm not created (%s)", str(e.orig).splitlines()[0] if e.orig else e)
    else:
        savepoint.commit()
    schema = conn.execute(find).scalar_one_or_none()
    if schema is None:
        log.warning("no pg_trgm: the unit-name search stays a sequential scan")
        return None
    return str(schema)


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
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        trgm = _trigram_schema(conn)
        if trgm is not None:
            opclass = f'"{trgm}".gin_trgm_ops' if trgm != "pg_catalog" else "gin_trgm_ops"
            op.execute(
                f"CREATE INDEX IF NOT EXISTS {UNIT_NAME_TRGM_INDEX}"
                f" ON certificate_request USING gin (unit_name {opclass})"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {UNIT_NAME_TRGM_INDEX}")
    op.drop_index("ix_request_entered_at_id", table_name="certificate_request")
    op.drop_index("ix_request_access_type_id", table_name="certificate_request")
    op.drop_index("ix_request_province_id", table_name="certificate_request")
    op.drop_index("ix_request_attachment_request_id", table_name="request_attachment")
    op.drop_table("request_attachment")
    op.drop_index("ix_login_failure_address_at", table_name="login_failure")
    op.drop_index("ix_login_failure_user_at", table_name="login_failure")
    op.drop_table("login_failure")
