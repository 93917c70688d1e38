"""Users, import batches and certificate requests."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from pki.enums import (
    AccessMode,
    AccessType,
    CredentialType,
    Deal,
    HandlerIdType,
    Network,
    RequestState,
)
from pki.models.columns import enum_field as _enum
from pki.models.columns import utc_field as _utc


class User(SQLModel, table=True):
    __tablename__ = "pki_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    display_name: str = Field(default="", max_length=64)
    password_hash: str = Field(max_length=255)
    roles: str = Field(max_length=255)  # comma-separated Role values, sorted
    active: bool = True
    created_at: datetime = _utc(nullable=False)
    point_id: int | None = Field(default=None, foreign_key="point.id", index=True)  # None: the center

    def role_set(self) -> frozenset[str]:
        return parse_roles(self.roles)


def parse_roles(stored: str) -> frozenset[str]:
    """The role set of a ``pki_user.roles`` value (comma-separated, sorted)."""
    return frozenset(r for r in stored.split(",") if r)


class ImportBatch(SQLModel, table=True):
    """One bulk import of a 附件4–6 unit list."""

    __tablename__ = "import_batch"

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(max_length=128)
    access_mode: AccessMode = _enum(AccessMode)
    source_name: str = Field(default="", max_length=255)
    row_count: int = 0
    created_by: str = Field(max_length=64)
    created_at: datetime = _utc(nullable=False)


class CertificateRequest(SQLModel, table=True):
    """One 附件7 application and where it stands."""

    __tablename__ = "certificate_request"
    __table_args__ = (
        Index("ix_request_state_id", "state", "id"),
        Index("ix_request_credential", "credential_number"),
        Index("ix_request_province_id", "province", "id"),
        Index("ix_request_access_type_id", "access_type", "id"),
        Index("ix_request_entered_at_id", "entered_at", "id"),
        Index("ix_request_point_id", "point_id", "id"),
        Index("ix_request_subject_certificate", "subject_certificate_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    state: RequestState = _enum(RequestState, index=False)
    version: int = 1  # bumped on every change; a stale edit is refused

    # 申请单位 (the applicant unit)
    unit_name: str = Field(max_length=64)
    legal_representative: str = Field(max_length=32)
    unit_phone: str = Field(max_length=32)
    unit_fax: str = Field(max_length=32)
    province: str = Field(max_length=16, index=True)
    address: str = Field(max_length=128)
    county: str = Field(default="", max_length=32)
    township: str = Field(default="", max_length=32)
    email: str = Field(max_length=254)
    postal_address: str = Field(max_length=128)
    postal_code: str = Field(max_length=6)
    credential_type: CredentialType = _enum(CredentialType)
    credential_number: str = Field(max_length=32)

    # 经办人 (the handler)
    handler_name: str = Field(max_length=32)
    handler_contact: str = Field(max_length=32)
    handler_id_type: HandlerIdType = _enum(HandlerIdType)
    handler_id_number: str = Field(max_length=32)

    # 申请内容 (what is applied for)
    network: Network = _enum(Network)
    access_type: AccessType = _enum(AccessType, index=True)
    target_system: str = Field(max_length=128)
    validity_months: int
    agreement_accepted: bool
    application_date: date

    # From a 附件4–6 unit list, when the request came in bulk
    batch_id: int | None = Field(default=None, foreign_key="import_batch.id", index=True)
    industry: str = Field(default="", max_length=64)
    location: str = Field(default="", max_length=128)
    ownership_type: str = Field(default="", max_length=32)
    energy_consumption: str = Field(default="", max_length=128)
    main_energy_types: str = Field(default="", max_length=128)

    # 受理点意见 and who signed each step, when (cleared when an edit voids the acceptance)
    entered_by: str = Field(max_length=64)
    entered_at: datetime = _utc(nullable=False)
    acceptance_opinion: str | None = Field(default=None, max_length=16)  # agree | disagree
    acceptance_comment: str = Field(default="", max_length=500)
    usbkey_model: str = Field(default="", max_length=128)  # USBKEY 品牌及型号
    accepted_by: str | None = Field(default=None, max_length=64)
    accepted_at: datetime | None = _utc()
    countersigned_by: str | None = Field(default=None, max_length=64)
    countersigned_at: datetime | None = _utc()
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = _utc()
    review_decision: str | None = Field(default=None, max_length=16)  # approve | return | reject
    review_reason: str = Field(default="", max_length=500)
    issued_by: str | None = Field(default=None, max_length=64)
    issued_at: datetime | None = _utc()
    distributed_by: str | None = Field(default=None, max_length=64)
    distributed_at: datetime | None = _utc()
    updated_at: datetime = _utc(nullable=False)
    point_id: int | None = Field(default=None, foreign_key="point.id")  # the 受理点 whose work it is

    # The deal (业务类型) and, for every deal but a new one, the certificate (and so the key) it concerns
    deal: Deal = _enum(Deal, default=Deal.NEW)
    subject_certificate_id: int | None = Field(
        default=None,
        sa_column=Column(ForeignKey("certificate.id", name="fk_request_subject_certificate", use_alter=True)),
    )
    deal_reason: str = Field(default="", max_length=32)  # a revocation reason, a damaged key's fate
    deal_comment: str = Field(default="", max_length=500)  # what the unit says, in its words
