"""Encoding and signing an OCSP response (RFC 6960 §4.2.1) with asn1crypto, for responders whose key
cryptography cannot sign with (SM2: SM3withSM2 with the standard signer ID; RFC 6960 allows any signature
algorithm).

The responder (pki/services/ocsp_responder.py) decides status, times and nonce exactly as for RSA and ECDSA
responders; this module lays the same answer out: one SingleResponse echoing the request's CertID, the
responder named by key hash, the nonce echoed, the delegated signer's certificate included.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache

from asn1crypto import core as a_core
from asn1crypto import ocsp as a_ocsp
from asn1crypto import x509 as a_x509

from pki.ca import signing
from pki.ca.keys import SigningKey


@lru_cache(maxsize=64)
def _signer(signer_der: bytes) -> tuple[a_x509.Certificate, bytes]:
    """The signer certificate parsed once, and its ResponderID key hash: SHA-1 of its public key bits."""
    cert = a_x509.Certificate.load(signer_der)
    bits = cert["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:]
    return cert, hashlib.sha1(bits, usedforsecurity=False).digest()


def _cert_status(status: str, revoked_at: datetime | None, reason: str | None) -> a_ocsp.CertStatus:
    if status == "revoked":
        assert revoked_at is not None
        info: dict[str, object] = {"revocation_time": revoked_at}
        if reason is not None:
            info["revocation_reason"] = reason
        return a_ocsp.CertStatus({"revoked": a_ocsp.RevokedInfo(info)})
    return a_ocsp.CertStatus({status: a_core.Null()})


def basic_response(
    *,
    signer_der: bytes,
    signer_key: SigningKey,
    hash_algorithm: str,
    issuer_name_hash: bytes,
    issuer_key_hash: bytes,
    serial: int,
    status: str,
    revoked_at: datetime | None,
    reason: str | None,
    this_update: datetime,
    next_update: datetime,
    nonce: bytes | None,
) -> bytes:
    """The DER OCSPResponse (successful, id-pkix-ocsp-basic) for one certificate.

    ``status`` is "good", "revoked" or "unknown"; ``reason`` an RFC 5280 CRLReason in asn1crypto's
    spelling (key_compromise, …) or None to leave it out; ``hash_algorithm`` the request's CertID hash
    (sha1, sha256, …), echoed with the request's hashes and serial.
    """
    signer, key_hash = _signer(signer_der)
    single = a_ocsp.SingleResponse(
        {
            "cert_id": {
                "hash_algorithm": {"algorithm": hash_algorithm},
                "issuer_name_hash": issuer_name_hash,
                "issuer_key_hash": issuer_key_hash,
                "serial_number": serial,
            },
            "cert_status": _cert_status(status, revoked_at, reason),
            "this_update": this_update,
            "next_update": next_update,
        }
    )
    data: dict[str, object] = {
        "responder_id": a_ocsp.ResponderId({"by_key": key_hash}),
        "produced_at": this_update,
        "responses": [single],
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs = a_ocsp.ResponseData(data)
    basic = a_ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": tbs,
            "signature_algorithm": a_x509.SignedDigestAlgorithm.load(
                signing.algorithm_identifier(signer_key)
            ),
            "signature": signing.sign(signer_key, tbs.dump()),
            "certs": [signer],
        }
    )
    return bytes(
        a_ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
            }
        ).dump()
    )
