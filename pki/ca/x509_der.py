"""Encoding and signing an X.509 v3 certificate (RFC 5280 §4.1) with asn1crypto, for what cryptography's
builder cannot sign: an SM2 subject key or an SM2 issuer key.

The profile (names, extensions and their order, validity) is decided in pki/ca/certs.py exactly as for
RSA and ECDSA; this module only lays the same parts out as a TBSCertificate and signs it with
pki/ca/signing.py. For RSA and ECDSA inputs it yields the same TBSCertificate as cryptography's builder
(tested), so the two paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core as a_core
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509

from pki.ca import der, signing
from pki.ca.keys import SigningKey

# (extension OID, critical, extnValue contents: the DER of the extension's value)
RawExtension = tuple[str, bool, bytes]


def _time(at: datetime) -> a_x509.Time:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    at = at.astimezone(UTC).replace(microsecond=0)
    return a_x509.Time({"utc_time": at} if at.year < 2050 else {"general_time": at})


@lru_cache(maxsize=256)  # a batch issued at one instant for the same months shares one
def _validity(not_before: datetime, not_after: datetime) -> a_x509.Validity:
    built = a_x509.Validity({"not_before": _time(not_before), "not_after": _time(not_after)})
    return a_x509.Validity.load(built.dump())


# Most parts repeat from certificate to certificate (the issuer, its key identifier, the URLs, the policy,
# the key usages): each distinct part is built once and reused, so a certificate costs little more than its
# signature. asn1crypto objects loaded from DER dump their bytes as they are.
@lru_cache(maxsize=1024)
def _extension(oid: str, critical: bool, value: bytes) -> a_x509.Extension:
    built = a_x509.Extension(
        {"extn_id": oid, "critical": critical, "extn_value": a_core.ParsableOctetString(value)}
    )
    return a_x509.Extension.load(built.dump())


@lru_cache(maxsize=256)
def _name(name_der: bytes) -> a_x509.Name:
    return a_x509.Name.load(name_der)


@lru_cache(maxsize=64)
def _algorithm(algorithm_der: bytes) -> a_x509.SignedDigestAlgorithm:
    return a_x509.SignedDigestAlgorithm.load(algorithm_der)


def tbs_certificate(
    *,
    issuer_key: SigningKey,
    serial: int,
    issuer_der: bytes,
    subject_der: bytes,
    spki_der: bytes,
    not_before: datetime,
    not_after: datetime,
    extensions: Sequence[RawExtension],
) -> a_x509.TbsCertificate:
    return a_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": _algorithm(signing.algorithm_identifier(issuer_key)),
            "issuer": _name(issuer_der),
            "validity": _validity(not_before, not_after),
            "subject": a_x509.Name.load(subject_der),
            "subject_public_key_info": a_keys.PublicKeyInfo.load(spki_der),
            "extensions": a_x509.Extensions([_extension(*ext) for ext in extensions]),
        }
    )


def signed_certificate(tbs: a_x509.TbsCertificate, issuer_key: SigningKey) -> bytes:
    """The DER Certificate: ``tbs``, its signature algorithm and the signature over its DER.

    The outer SEQUENCE of three is written with pki/ca/der.py, as the CRL writer does: asn1crypto would
    re-encode the parts it has just encoded (a fifth of a certificate's cost here).
    """
    tbs_der = tbs.dump()
    algorithm = signing.algorithm_identifier(issuer_key)
    return der.sequence(tbs_der, algorithm, der.bit_string(signing.sign(issuer_key, tbs_der)))
