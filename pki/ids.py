"""Identifiers that come from outside (CLI arguments, URL path segments, form fields), checked before any query.

Every id column is an INTEGER: 64 bits on SQLite but 32 on PostgreSQL, and ids are assigned from 1. A number
outside 1..2^31-1 therefore names nothing; sent to the database it would not even be "not found" but a
driver error (SQLite: OverflowError; PostgreSQL: NumericValueOutOfRange). The service calls :func:`known_id`
on each id it is given, so every adapter gets the same clear "not found".
"""

from __future__ import annotations

from pki.errors import FieldError, NotFoundError, ValidationError

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER, the narrower of our two databases

_WHAT_ZH = {"request": "申请", "attachment": "附件", "evidence": "备案材料", "certificate": "证书"}


def shown(value: int) -> str:
    """A number short enough for a one-line message (an attacker's id may have thousands of digits)."""
    text = (
        str(value) if -(10**30) < value < 10**30 else f"{'-' if value < 0 else ''}<{value.bit_length()}-bit>"
    )
    return text


def known_id(value: int, what: str = "request") -> int:
    """``value`` if it can name a row; NotFoundError ("request N not found") otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        label = shown(value) if isinstance(value, int) else repr(value)[:30]
        zh = _WHAT_ZH.get(what, what)
        raise NotFoundError(f"{what} {label} not found", message_zh=f"{zh} {label} 不存在")
    return value


def id_bound(value: int | None, field: str) -> int | None:
    """A keyset or filter bound (``after_id``, ``request_id`` of a filter): None, or 0..MAX_ID; a
    ValidationError naming ``field`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValidationError(
            [FieldError(field, f"must be a number from 0 to {MAX_ID}", f"应为 0 到 {MAX_ID} 之间的整数")]
        )
    return value
