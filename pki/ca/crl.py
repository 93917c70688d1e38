"""Writing a v2 CRL (RFC 5280 §5) straight to DER.

cryptography's builder needs one RevokedCertificate object per entry (about 1.3 s for 100,000 here); a CRL
is a flat list, so we encode it directly and sign the TBSCertList with the CA key, which may be any
cryptography private key, including a token-backed one, or an SM2 key (SM3withSM2). The output is checked by cryptography's parser,
openssl and pkilint in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509

from pki.ca import der, signing
from pki.ca.keys import SigningKey

# RFC 5280 §5.3.1 CRLReason codes by our reason names.
REASON_CODES = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}

_REASON_EXT = der.oid("2.5.29.21")
_CRL_NUMBER = "2.5.29.20"
_AKI = "2.5.29.35"


# The reason-code entry extension of every code but unspecified, encoded once (RFC 5280 §5.3.1: the reason
# code SHOULD be absent rather than unspecified).
_REASON_EXTENSIONS = {
    name: der.sequence(der.sequence(_REASON_EXT, der.octet_string(der.enumerated(code))))
    for name, code in REASON_CODES.items()
    if code != 0
}


def _utc_time(at: datetime) -> bytes:
    """der.time, specialized: naive values are UTC (as the database returns them), UTCTime before 2050."""
    t = at if at.tzinfo is None else at.astimezone(UTC)
    if t.year >= 2050:
        return der.time(t.replace(tzinfo=UTC))
    return b"\x17\x0d%02d%02d%02d%02d%02d%02dZ" % (t.year % 100, t.month, t.day, t.hour, t.minute, t.second)


def encode_entries(rows: Iterable[tuple[str, datetime, str]]) -> bytes:
    """The revokedCertificates contents for (hex serial, revocation time, reason name) rows.

    Hot loop of CRL publication: every entry (a serial of at most 20 octets, a 15-octet time, an optional
    reason) is under 128 octets, so lengths are single octets.
    """
    parts: list[bytes] = []
    append = parts.append
    for serial_hex, at, reason in rows:
        n = int(serial_hex, 16)
        serial = n.to_bytes(n.bit_length() // 8 + 1, "big")
        body = b"\x02" + bytes((len(serial),)) + serial + _utc_time(at) + _REASON_EXTENSIONS.get(reason, b"")
        append(b"\x30" + bytes((len(body),)) + body)
    return b"".join(parts)


def build_crl(
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    entries: Iterable[tuple[str, datetime, str]],
) -> bytes:
    """DER of a signed v2 CRL with AKI and CRL number; entries are (hex serial, revocation time, reason name)
    rows straight from the database, in the order given."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    algorithm = signing.algorithm_identifier(issuer_key)
    revoked = encode_entries(entries)
    extensions = der.sequence(
        der.sequence(der.oid(_AKI), der.octet_string(der.sequence(der.tlv(0x80, ski)))),
        der.sequence(der.oid(_CRL_NUMBER), der.octet_string(der.integer(number))),
    )
    tbs = der.sequence(
        der.integer(1),  # v2
        algorithm,
        issuer.subject.public_bytes(),
        der.time(this_update),
        der.time(next_update),
        *([der.tlv(0x30, revoked)] if revoked else []),
        der.explicit(0, extensions),
    )
    return der.sequence(tbs, algorithm, der.bit_string(signing.sign(issuer_key, tbs)))
