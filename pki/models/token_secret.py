"""USB keys' SO PINs, sealed (AES-256-GCM under a key derived from the audit key: services/token_secrets.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, String
from sqlmodel import Field, SQLModel

from pki.models.columns import utc_field


class TokenSoPin(SQLModel, table=True):
    """The SO PIN of one USB key (by its PKCS#11 serial), and the next one while an unlock changes it."""

    __tablename__ = "token_so_pin"

    serial: str = Field(sa_column=Column(String(64), primary_key=True))
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # nonce + ciphertext
    next_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    registered_at: datetime = utc_field(nullable=False)
    registered_by: str = Field(max_length=64)
    updated_at: datetime = utc_field(nullable=False)
