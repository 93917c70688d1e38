"""Settings of a home kept in its database, so that every server on one database agrees (the public URL)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class HomeSetting(SQLModel, table=True):
    __tablename__ = "home_setting"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=2048)
    updated_at: datetime = utc_field(nullable=False)
    updated_by: str = Field(default="", max_length=64)
