"""Calendar-month validity on the Beijing calendar, and the DER encoders behind the CRL writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509

from pki.ca import der
from pki.ca.validity import add_months

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (datetime(2020, 2, 29, 10, 0, tzinfo=CST), 12, datetime(2021, 2, 28, 10, 0, tzinfo=CST)),
        (datetime(2020, 2, 29, 10, 0, tzinfo=CST), 48, datetime(2024, 2, 29, 10, 0, tzinfo=CST)),
        (datetime(2020, 1, 31, 9, 0, tzinfo=CST), 1, datetime(2020, 2, 29, 9, 0, tzinfo=CST)),
        (datetime(2021, 1, 31, 9, 0, tzinfo=CST), 1, datetime(2021, 2, 28, 9, 0, tzinfo=CST)),
        (datetime(2020, 8, 31, 9, 0, tzinfo=CST), 13, datetime(2021, 9, 30, 9, 0, tzinfo=CST)),
        (datetime(2020, 12, 15, 9, 0, tzinfo=CST), 12, datetime(2021, 12, 15, 9, 0, tzinfo=CST)),
        (datetime(2020, 11, 15, 0, 0, tzinfo=CST), 60, datetime(2025, 11, 15, 0, 0, tzinfo=CST)),
        (datetime(2020, 5, 31, 23, 59, 59, tzinfo=CST), 24, datetime(2022, 5, 31, 23, 59, 59, tzinfo=CST)),
    ],
    ids=[
        "leap-day+12",
        "leap-day+48",
        "jan31+1-leap",
        "jan31+1",
        "aug31+13",
        "plain",
        "cutover+60",
        "last-second",
    ],
)
def test_calendar_months(start: datetime, months: int, end: datetime) -> None:
    got = add_months(start, months)
    assert got == end and got.tzinfo is UTC


def test_months_count_on_the_beijing_calendar() -> None:
    """2020-02-28T16:30Z is already 29 February in Beijing: the end is 28 February 2021 there."""
    start = datetime(2020, 2, 28, 16, 30, tzinfo=UTC)
    assert add_months(start, 12) == datetime(2021, 2, 28, 0, 30, tzinfo=CST)
    # The UTC calendar would have said 2021-02-28T16:30Z: a day later than the form promises.
    assert add_months(start, 12) != datetime(2021, 2, 28, 16, 30, tzinfo=UTC)


def test_naive_and_negative_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_months(datetime(2020, 1, 1), 12)
    with pytest.raises(ValueError, match="negative"):
        add_months(datetime(2020, 1, 1, tzinfo=UTC), -1)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (255, "020200ff"),
        (256, "02020100"),
        (2**159 - 1, "0214" + "7f" + "ff" * 19),
        (2**159, "0215" + "0080" + "00" * 19),
    ],
)
def test_integer(value: int, encoded: str) -> None:
    assert der.integer(value).hex() == encoded


@pytest.mark.parametrize(
    "dotted",
    [
        "2.5.29.21",
        "1.2.840.10045.4.3.2",
        "1.2.156.10260.4.1.4",
        "2.25.72175675492666343203227853568858374506",
    ],
)
def test_oid_matches_cryptography(dotted: str) -> None:
    """cryptography writes the OID inside a Name attribute; our encoder must produce the same bytes."""
    assert der.oid(dotted) == _oid_via_name(dotted)


def _oid_via_name(dotted: str) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(dotted), "x")])
    body = name.public_bytes()
    start = body.index(b"\x06")
    return body[start : start + 2 + body[start + 1]]


@pytest.mark.parametrize(
    ("at", "encoded"),
    [
        (datetime(2020, 11, 14, 16, 0, tzinfo=UTC), b"\x17\x0d201114160000Z"),
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), b"\x17\x0d491231235959Z"),
        (datetime(2050, 1, 1, 0, 0, tzinfo=UTC), b"\x18\x0f20500101000000Z"),
        (datetime(2020, 11, 15, 0, 0, tzinfo=CST), b"\x17\x0d201114160000Z"),
    ],
    ids=["utc", "last-utctime", "first-generalized", "converted-to-utc"],
)
def test_time(at: datetime, encoded: bytes) -> None:
    assert der.time(at) == encoded


def test_long_lengths() -> None:
    assert der.length(127) == b"\x7f"
    assert der.length(128) == b"\x81\x80"
    assert der.length(70_000) == b"\x83\x01\x11\x70"
