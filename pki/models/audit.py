"""The audit trail's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field as _utc


class AuditRecord(SQLModel, table=True):
    """One link of the audit hash chain. ``seq`` is gapless; ``hash`` covers every column and ``prev_hash``;
    ``mac`` is the HMAC of ``hash`` under the audit key (empty on records written before the home had one)."""

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = _utc(nullable=False)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    subject_type: str = Field(default="", max_length=32)
    subject_id: str = Field(default="", max_length=64)
    details: str = ""  # canonical JSON
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    mac: str = Field(default="", max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's newest link. Appenders lock this row, which orders concurrent writers."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)
