"""Key algorithms by name, key generation and the signature hash each key uses."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.ca.sm2 import ALGORITHM as SM2
from pki.ca.sm2 import Sm2PrivateKey, Sm2PublicKey

# What cryptography signs with (its builders, token-backed keys): RSA and ECDSA.
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
# A CA's key: one of those, or SM2 (signed through pki/ca/sm2.py).
SigningKey = PrivateKey | Sm2PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Sm2PublicKey

# The key types we issue to and sign with, by the names policy files use.
CURVES: dict[str, type[ec.EllipticCurve]] = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
KEY_ALGORITHMS = (*RSA_BITS, *CURVES, SM2)


def key_algorithm_label(algorithm: str) -> str:
    """A key algorithm as people write it: ec-p256 -> ECC P-256, rsa-2048 -> RSA 2048位."""
    if algorithm in RSA_BITS:
        return f"RSA {RSA_BITS[algorithm]}位"
    if algorithm in CURVES:
        return f"ECC {algorithm.removeprefix('ec-').upper().replace('P', 'P-')}"
    return algorithm.upper()  # sm2 -> SM2


def generate_private_key(algorithm: str) -> SigningKey:
    if algorithm in CURVES:
        return ec.generate_private_key(CURVES[algorithm]())
    if algorithm in RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[algorithm])
    if algorithm == SM2:
        return Sm2PrivateKey.generate()
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def is_sm2(algorithm: str) -> bool:
    """Whether the key type named ``algorithm`` is SM2 (signs SM3withSM2, GM/T 0015 profile)."""
    return algorithm == SM2


def algorithm_of(public_key: object) -> str | None:
    """'rsa-2048', 'ec-p256', 'sm2', … or None for anything we do not issue to (other sizes, curves, types)."""
    if isinstance(public_key, Sm2PublicKey):
        return SM2
    if isinstance(public_key, rsa.RSAPublicKey):
        name = f"rsa-{public_key.key_size}"
        return name if name in RSA_BITS else None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for name, curve in CURVES.items():
            if isinstance(public_key.curve, curve):
                return name
    return None


def signature_hash(
    key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 (matching strength), SHA-256 otherwise (SM2 always hashes with SM3)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP384R1
    ):
        return hashes.SHA384()
    return hashes.SHA256()


def spki_der(public_key: PublicKey) -> bytes:
    if isinstance(public_key, Sm2PublicKey):
        return public_key.spki_der
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_sha256(public_key: PublicKey) -> str:
    return hashlib.sha256(spki_der(public_key)).hexdigest()
