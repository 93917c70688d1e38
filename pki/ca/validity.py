"""Validity in calendar months, computed on the Beijing calendar that the form's 有效期 speaks of."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from pki.clock import CHINA_TZ


def add_months(start: datetime, months: int) -> datetime:
    """``start`` plus ``months`` calendar months, the day clamped to the month's end (Feb 29 + 12 → Feb 28).

    The calendar is China Standard Time's; the result is aware UTC with the same time of day.
    """
    if start.tzinfo is None:
        raise ValueError("add_months needs an aware datetime")
    if months < 0:
        raise ValueError("months must not be negative")
    local = start.astimezone(CHINA_TZ)
    total = local.month - 1 + months
    year, month = local.year + total // 12, total % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(UTC)


def whole_seconds(at: datetime) -> datetime:
    """X.509 times carry whole seconds; drop the rest so what we store equals what we sign."""
    return at.replace(microsecond=0)
