"""One signature over DER bytes with any CA key, and the AlgorithmIdentifier that names it.

What the certificate, CRL and OCSP writers use when they encode the signed structure themselves: the key
may be RSA (PKCS#1 v1.5), ECDSA, SM2 (SM3withSM2, standard signer ID) or a token-backed cryptography key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pki.ca import der
from pki.ca.keys import SigningKey, signature_hash
from pki.ca.sm2 import SM3_WITH_SM2_OID, Sm2PrivateKey

_SIG_OIDS = {
    ("ec", "sha256"): "1.2.840.10045.4.3.2",
    ("ec", "sha384"): "1.2.840.10045.4.3.3",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("rsa", "sha384"): "1.2.840.113549.1.1.12",
}


def algorithm_oid(key: SigningKey) -> str:
    if isinstance(key, Sm2PrivateKey):
        return SM3_WITH_SM2_OID
    family = "ec" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"
    return _SIG_OIDS[(family, signature_hash(key).name)]


def algorithm_identifier(key: SigningKey) -> bytes:
    """DER AlgorithmIdentifier of the signatures ``key`` makes.

    RFC 5758: ECDSA identifiers have no parameters; GM/T 0006 and GM/T 0015: SM3withSM2 neither; RFC 4055:
    RSA PKCS#1 v1.5 ones carry NULL.
    """
    return _identifier(algorithm_oid(key), isinstance(key, rsa.RSAPrivateKey))


@lru_cache(maxsize=16)
def _identifier(dotted: str, null_parameters: bool) -> bytes:
    return der.sequence(der.oid(dotted), der.null()) if null_parameters else der.sequence(der.oid(dotted))


def sign(key: SigningKey, data: bytes) -> bytes:
    """The signature value (the BIT STRING contents) over ``data``."""
    if isinstance(key, Sm2PrivateKey):
        return key.sign(data)
    digest = signature_hash(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(digest))
    return key.sign(data, padding.PKCS1v15(), digest)
