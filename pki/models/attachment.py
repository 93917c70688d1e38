"""Scans kept with a request: the signed and stamped 附件7 and the unit's credential."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class RequestAttachment(SQLModel, table=True):
    __tablename__ = "request_attachment"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="certificate_request.id", index=True)
    kind: str = Field(max_length=32)  # access.toml [attachments] kinds
    filename: str = Field(max_length=255)
    media_type: str = Field(max_length=64)  # from the content's magic bytes, never from the client
    size: int
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    uploaded_by: str = Field(max_length=64)
    uploaded_at: datetime = utc_field(nullable=False)
