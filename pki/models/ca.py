"""The certificate authority's tables: CAs, issued certificates, published CRLs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from pki.enums import AccessType, CaRole, CertificateStatus, RevocationReason
from pki.models.columns import enum_field, utc_field


class CertificateAuthority(SQLModel, table=True):
    """A CA certificate of ours and where its private key lives (never the key itself)."""

    __tablename__ = "certificate_authority"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_column=Column(String(32), unique=True, nullable=False))  # root, test, ocsp-test, …
    role: CaRole = enum_field(CaRole)
    kind: AccessType | None = enum_field(AccessType, nullable=True)
    parent_id: int | None = Field(default=None, foreign_key="certificate_authority.id")
    subject: str = Field(max_length=512)
    serial: str = Field(max_length=40)
    not_valid_before: datetime = utc_field(nullable=False)
    not_valid_after: datetime = utc_field(nullable=False)
    certificate_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_ref: str = Field(max_length=512)  # file:ca/test.key.pem or a pkcs11: URI
    key_algorithm: str = Field(max_length=16)
    created_at: datetime = utc_field(nullable=False)


class Certificate(SQLModel, table=True):
    """An end-entity certificate we issued. Its status is 'valid' or 'revoked'; expiry is derived."""

    __tablename__ = "certificate"
    __table_args__ = (
        Index("ix_certificate_ca_status", "ca_id", "status"),
        Index("ix_certificate_not_after", "not_valid_after"),
    )

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(sa_column=Column(String(40), unique=True, nullable=False))  # upper-case hex
    ca_id: int = Field(foreign_key="certificate_authority.id")
    request_id: int | None = Field(default=None, foreign_key="certificate_request.id", index=True)
    kind: AccessType = enum_field(AccessType)
    subject: str = Field(max_length=1024)
    unit_name: str = Field(max_length=64)
    credential_number: str = Field(max_length=32, index=True)
    province: str = Field(default="", max_length=16)
    not_valid_before: datetime = utc_field(nullable=False)
    not_valid_after: datetime = utc_field(nullable=False)
    status: CertificateStatus = enum_field(CertificateStatus)
    revoked_at: datetime | None = utc_field()
    revocation_reason: RevocationReason | None = enum_field(RevocationReason, nullable=True)
    revocation_comment: str = Field(default="", max_length=500)
    revoked_by: str | None = Field(default=None, max_length=64)
    key_algorithm: str = Field(max_length=16)
    spki_sha256: str = Field(
        max_length=64, index=True
    )  # the public key's fingerprint: no key serves two units
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    issued_by: str = Field(max_length=64)
    issued_at: datetime = utc_field(nullable=False)
    renewed_from_id: int | None = Field(default=None, foreign_key="certificate.id")
    delivered: bool = True  # false while a token write is pending (USB key issuance)


class CrlRecord(SQLModel, table=True):
    """Every CRL we published, newest served; ``number`` strictly increases per CA."""

    __tablename__ = "crl"
    __table_args__ = (UniqueConstraint("ca_id", "number", name="uq_crl_ca_number"),)

    id: int | None = Field(default=None, primary_key=True)
    ca_id: int = Field(foreign_key="certificate_authority.id")
    number: int
    this_update: datetime = utc_field(nullable=False)
    next_update: datetime = utc_field(nullable=False)
    entries: int
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    published_by: str = Field(max_length=64)
