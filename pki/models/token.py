"""USB keys (tokens) as inventory records, the certificate objects written onto them, and hand-overs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from pki.enums import TokenState
from pki.models.columns import enum_field, utc_field


class UsbToken(SQLModel, table=True):
    """A USB key known to the certificate center, identified by its PKCS#11 serial number."""

    __tablename__ = "usb_token"

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    model: str = Field(default="", max_length=128)  # USBKEY 品牌及型号 (tokens.toml name) or the token's own
    label: str = Field(default="", max_length=64)
    state: TokenState = enum_field(TokenState)
    holder_unit: str = Field(default="", max_length=64)  # 单位名称 of the unit holding it
    holder_credential: str = Field(default="", max_length=32, index=True)
    first_seen_at: datetime = utc_field(nullable=False)
    updated_at: datetime = utc_field(nullable=False)
    updated_by: str = Field(max_length=64)
    point_id: int | None = Field(default=None, foreign_key="point.id", index=True)  # the point holding it
    transfer_to_id: int | None = Field(default=None, foreign_key="point.id")  # in transit to this point


class TokenCertificate(SQLModel, table=True):
    """Which token holds (or is to hold) a certificate: written when issued onto a token, before delivery."""

    __tablename__ = "token_certificate"

    certificate_id: int = Field(foreign_key="certificate.id", primary_key=True)
    token_id: int = Field(foreign_key="usb_token.id", index=True)
    key_id: str = Field(max_length=128)  # CKA_ID in hex, shared by the key pair and the certificate object
    label: str = Field(max_length=64)  # CKA_LABEL of the three objects
    model: str = Field(default="", max_length=128)
    key_type: str = Field(max_length=16)  # written and read back once the certificate is delivered


class HandOver(SQLModel, table=True):
    """A certificate (on its token) handed over to the unit's recipient by a 分发员."""

    __tablename__ = "hand_over"

    certificate_id: int = Field(foreign_key="certificate.id", primary_key=True)
    request_id: int = Field(foreign_key="certificate_request.id", index=True)
    recipient: str = Field(max_length=64)
    handed_by: str = Field(max_length=64)
    handed_at: datetime = utc_field(nullable=False)
