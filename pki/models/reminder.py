"""Expiry reminders: every mail `pkictl notify expiring` decided to send, kept with the message itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class Reminder(SQLModel, table=True):
    """One mail: to a unit about one certificate entering one window, or a point's summary of a run.

    Claimed (``sent_at`` empty) in the run's transaction before anything is sent, then sent and marked one by
    one; a run that finds claimed mails unsent (an earlier run stopped) sends exactly those bytes again, with
    the same Message-ID."""

    __tablename__ = "reminder"
    __table_args__ = (
        # once per certificate and window (a summary has no certificate: NULLs never collide)
        UniqueConstraint("certificate_id", "window_days", name="uq_reminder_certificate_window"),
        Index("ix_reminder_unsent", "sent_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # unit | summary
    certificate_id: int | None = Field(default=None, foreign_key="certificate.id")
    window_days: int = 0
    point: str = Field(default="", max_length=64)  # whose summary; the unit's point for a unit's mail
    recipient: str = Field(max_length=1024)
    message_id: str = Field(max_length=255, unique=True)
    message: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # RFC 5322, as sent
    claimed_at: datetime = utc_field(nullable=False)
    sent_at: datetime | None = utc_field()
