"""Connected parties, the evidence behind test → formal approvals, and cutover runs with their decisions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from pki.enums import AccessMode, CutoverRunState, EvidenceType, PartyKind, Readiness
from pki.models.columns import enum_field, utc_field


class Party(SQLModel, table=True):
    """A provincial platform or unit that connects to a platform (from a 附件4–6 list), keyed by USCC.

    Its state (registered, allowed, refused) is not stored here but read from its cutover decision: one
    truth, and the run writes one row per party instead of two."""

    __tablename__ = "party"
    __table_args__ = (
        UniqueConstraint("platform", "credential_number", name="uq_party_platform_uscc"),
        Index("ix_party_platform_id", "platform", "id"),
        Index("ix_party_credential", "credential_number"),
        Index("ix_party_point_id", "point_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)  # a [[platform]] name in cutover.toml
    credential_number: str = Field(max_length=32)  # 统一社会信用代码
    name: str = Field(max_length=128)
    province: str = Field(max_length=16)
    party_kind: PartyKind = enum_field(PartyKind)
    access_mode: AccessMode = enum_field(AccessMode)
    industry: str = Field(default="", max_length=64)
    location: str = Field(default="", max_length=128)
    ownership_type: str = Field(default="", max_length=32)
    source_name: str = Field(default="", max_length=255)
    imported_by: str = Field(max_length=64)
    imported_at: datetime = utc_field(nullable=False)
    point_id: int | None = Field(default=None, foreign_key="point.id")  # the 受理点 that registered it


class Evidence(SQLModel, table=True):
    """A report or letter on record for a unit: reference, date and the document itself (with its SHA-256).

    The document is kept in the database, in the same transaction as its record: nothing half-written, one
    backup holds everything, and every web worker sees it whatever host it runs on.
    """

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("credential_number", "evidence_type", "sha256", name="uq_evidence_document"),
        Index("ix_evidence_credential", "credential_number", "evidence_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    credential_number: str = Field(max_length=32)
    evidence_type: EvidenceType = enum_field(EvidenceType)
    reference: str = Field(max_length=128)  # 文号 / report number
    document_date: date
    filename: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = utc_field(nullable=False)


class CutoverRun(SQLModel, table=True):
    """The one cutover run of a platform: its progress cursor, its claim and its totals.

    The unique platform makes a second run find this row (and change nothing once done); ``claimed_by`` with
    a fresh ``heartbeat_at`` keeps a second runner out while one is working.
    """

    __tablename__ = "cutover_run"

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    cutover: datetime = utc_field(nullable=False)  # the platform's instant when the run began
    at: datetime = utc_field(nullable=False)  # the instant decisions were taken for
    state: CutoverRunState = enum_field(CutoverRunState)
    cursor: int = 0  # the last party id decided
    allowed: int = 0
    refused: int = 0
    started_by: str = Field(max_length=64)
    started_at: datetime = utc_field(nullable=False)
    finished_at: datetime | None = utc_field()
    claimed_by: str | None = Field(default=None, max_length=36)
    heartbeat_at: datetime | None = utc_field()


class CutoverDecision(SQLModel, table=True):
    """What the cutover decided for one party, and why.

    Append-only, written only by the run from a join on ``party`` (parties and runs are never deleted), so
    the references hold by construction. They carry no foreign-key constraints on purpose: PostgreSQL's
    per-row FK triggers doubled the run's time (5.5 s → 2.9 s at 100,000 parties, bench/cutover.py).
    """

    __tablename__ = "cutover_decision"
    __table_args__ = (UniqueConstraint("run_id", "party_id", name="uq_cutover_decision_party"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int  # cutover_run.id
    party_id: int  # party.id
    allowed: bool
    readiness: Readiness = enum_field(Readiness)
    reason: str = Field(max_length=200)
