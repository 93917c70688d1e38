"""The remote desk's API: operator sessions (bearer tokens, stored as hashes) and idempotency records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class ApiSession(SQLModel, table=True):
    """One operator log-in from a desk. Only the SHA-256 of the bearer token is kept."""

    __tablename__ = "api_session"
    __table_args__ = (Index("ix_api_session_username", "username"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    username: str = Field(max_length=64)
    created_at: datetime = utc_field(nullable=False)
    last_used_at: datetime = utc_field(nullable=False)
    expires_at: datetime = utc_field(nullable=False)  # the absolute end; idle expiry counts from last_used_at
    revoked_at: datetime | None = utc_field()
    address: str = Field(default="", max_length=64)


class IdempotencyRecord(SQLModel, table=True):
    """An operation a desk asked for with an Idempotency-Key: claimed in the operation's own transaction, so
    a retry after a crash either finds it done (and gets its result) or finds nothing (and does it)."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("username", "key", name="uq_idempotency_user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    key: str = Field(max_length=128)
    operation: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    created_at: datetime = utc_field(nullable=False, index=True)
    status: int | None = Field(default=None)
    response: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
