"""SM2 keys and SM3withSM2 signatures (GB/T 32918, GM/T 0009), through tongsuopy.

pyca/cryptography cannot load or sign with SM2 keys, so SM2 keys are small wrappers around tongsuopy's
(a cryptography fork built on Tongsuo). No SM2 or SM3 arithmetic happens here: signing, verifying, key
generation and PKCS#8 encryption are all tongsuopy's. Every signature is made and checked with the
standard signer ID (GM/T 0009 §10: "1234567812345678"), which tongsuopy uses by default; OpenSSL 3.0 uses
an empty ID unless told ``distid:1234567812345678``, so a CSR it made without that option does not verify.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any

from tongsuopy.crypto import hashes as _hashes
from tongsuopy.crypto import serialization as _ser
from tongsuopy.crypto.asymciphers import ec as _ec
from tongsuopy.crypto.exceptions import InternalError as _InternalError
from tongsuopy.crypto.exceptions import InvalidSignature as _InvalidSignature
from tongsuopy.crypto.exceptions import UnsupportedAlgorithm as _Unsupported

ALGORITHM = "sm2"  # our key-type name, as policy files say it
CURVE_OID = "1.2.156.10197.1.301"  # sm2p256v1, the namedCurve of an SM2 SubjectPublicKeyInfo
SM3_WITH_SM2_OID = "1.2.156.10197.1.501"  # GM/T 0006: the signature algorithm, without parameters
SIGNER_ID = "1234567812345678"  # GM/T 0009's default user ID; everything we sign uses it


class Sm2PublicKey:
    """An SM2 public key. ``spki_der`` is its SubjectPublicKeyInfo (id-ecPublicKey, namedCurve SM2)."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def from_spki(cls, spki_der: bytes) -> Sm2PublicKey:
        """Raises ValueError unless ``spki_der`` is an SM2 SubjectPublicKeyInfo."""
        try:
            key = _ser.load_der_public_key(spki_der)
        except (ValueError, _Unsupported) as e:
            raise ValueError(f"not an SM2 public key ({e})") from e
        if not isinstance(getattr(key, "curve", None), _ec.SM2):
            raise ValueError("not an SM2 public key")
        return cls(key)

    @cached_property
    def spki_der(self) -> bytes:
        return bytes(self._key.public_bytes(_ser.Encoding.DER, _ser.PublicFormat.SubjectPublicKeyInfo))

    @cached_property
    def point(self) -> bytes:
        """The uncompressed point 04‖x‖y: the subjectPublicKey bits."""
        return bytes(self._key.public_bytes(_ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint))

    @property
    def key_id(self) -> bytes:
        """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits (as cryptography does for EC)."""
        return hashlib.sha1(self.point, usedforsecurity=False).digest()

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` (DER SM2Signature) is an SM3withSM2 signature of ``data`` under the standard
        signer ID."""
        try:
            self._key.verify(signature, data, _ec.ECDSA(_hashes.SM3()))
        except (_InvalidSignature, ValueError):
            return False
        except _InternalError:  # what tongsuopy raises for a signature that is not a DER SM2Signature
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sm2PublicKey) and other.spki_der == self.spki_der

    def __hash__(self) -> int:
        return hash(self.spki_der)


class Sm2PrivateKey:
    """An SM2 private key that signs SM3withSM2 with the standard signer ID."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(_ec.generate_private_key(_ec.SM2()))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes) -> Sm2PrivateKey:
        """An encrypted PKCS#8 PEM; raises ValueError for a wrong passphrase or another key type."""
        try:
            key = _ser.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError, _Unsupported) as e:
            raise ValueError(str(e)) from e
        if not isinstance(getattr(key, "curve", None), _ec.SM2):
            raise ValueError("not an SM2 private key")
        return cls(key)

    def encrypted_pem(self, passphrase: bytes) -> bytes:
        """PKCS#8 EncryptedPrivateKeyInfo, PBES2 (PBKDF2-HMAC-SHA256, SM4-CBC), as `openssl pkey -passin`
        opens it."""
        return bytes(
            self._key.private_bytes(
                _ser.Encoding.PEM, _ser.PrivateFormat.PKCS8, _ser.BestAvailableEncryption(passphrase)
            )
        )

    def sign(self, data: bytes) -> bytes:
        """The DER SM2Signature (SEQUENCE of r, s) over ``data``: SM3(Z‖data) with Z from the standard ID."""
        return bytes(self._key.sign(data, _ec.ECDSA(_hashes.SM3())))

    def public_key(self) -> Sm2PublicKey:
        return Sm2PublicKey(self._key.public_key())

    @property
    def key_size(self) -> int:
        return 256
