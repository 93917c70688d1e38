"""Acceptance points (受理点): where clerks work and keys are kept. A provincial point may have points under it
(one level: a point under another has none of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field

# The point every record of a home made before points belongs to, and where a center user's entries go.
DEFAULT_POINT = "默认受理点"


class Point(SQLModel, table=True):
    __tablename__ = "point"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    province: str = Field(default="", max_length=16)  # a provinces.toml name; "" for the default point
    parent_id: int | None = Field(default=None, foreign_key="point.id", index=True)
    # Set at its first intake or receipt of keys: from then on an acceptance there names a model it has in
    # stock (services/stock.py); before, any model of tokens.toml (keys only seen when issued onto).
    stock_kept: bool = False
    created_at: datetime = utc_field(nullable=False)
    created_by: str = Field(max_length=64)
