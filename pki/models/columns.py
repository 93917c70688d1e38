"""Column helpers: enums stored by value, timestamps as aware UTC (see :class:`pki.db.UTCDateTime`)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from sqlalchemy import Column
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field

from pki.db import UTCDateTime


def enum_field(
    enum_cls: type[Enum], *, nullable: bool = False, index: bool = False, default: Enum | None = None
) -> Any:
    """A VARCHAR column holding the enum's *value* (SQLAlchemy would store its name otherwise); with
    ``default``, rows inserted without it (and rows older than the column) hold that value."""
    extra: dict[str, Any] = {} if default is None else {"default": default}
    return Field(
        **extra,
        sa_column=Column(
            SAEnum(
                enum_cls,
                values_callable=lambda e: [m.value for m in e],
                native_enum=False,
                validate_strings=True,
                length=32,
                create_constraint=False,
            ),
            nullable=nullable,
            index=index,
            server_default=None if default is None else str(default.value),
        ),
    )


def utc_field(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))
