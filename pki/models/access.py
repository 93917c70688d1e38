"""Web access: failed logins kept for throttling (the audit trail keeps every attempt for good)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class LoginFailure(SQLModel, table=True):
    """One failed login, counted per user name and per client address within access.toml's window."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_user_at", "username", "at"),
        Index("ix_login_failure_address_at", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_field(nullable=False)
    username: str = Field(max_length=64)
    address: str = Field(default="", max_length=64)
