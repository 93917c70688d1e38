"""The few DER encoders (X.690) the CRL writer needs; small, exact, fast."""

from __future__ import annotations

from datetime import UTC, datetime


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(value: int) -> bytes:
    """Two's-complement INTEGER; non-negative values get a leading zero when the high bit is set."""
    if value < 0:
        raise ValueError("negative INTEGER not needed here")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return tlv(0x02, body)


def enumerated(value: int) -> bytes:
    return tlv(0x0A, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octet_string(content: bytes) -> bytes:
    return tlv(0x04, content)


def bit_string(content: bytes) -> bytes:
    return tlv(0x03, b"\x00" + content)


def null() -> bytes:
    return b"\x05\x00"


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def explicit(tag_number: int, content: bytes) -> bytes:
    return tlv(0xA0 | tag_number, content)


def time(at: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, whole seconds."""
    at = at.astimezone(UTC)
    if at.year < 2050:
        return tlv(0x17, at.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(0x18, at.strftime("%Y%m%d%H%M%SZ").encode("ascii"))
