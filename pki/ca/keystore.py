"""Where CA private keys live. Never in the database and never in plain text.

A key reference is stored with each CA record: ``file:NAME`` is an encrypted PKCS#8 PEM file in the home's
``ca/`` directory (PBES2, the passphrase from PKI_CA_PASSPHRASE or a prompt): PBKDF2-HMAC-SHA256 with
AES-256-CBC for RSA and ECDSA keys, with SM4-CBC for SM2 keys (tongsuopy's encoding, which `openssl pkey
-passin` opens). An HSM-backed store (PKCS#11) implements the same protocol in tokens/.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.ca.keys import SigningKey, generate_private_key
from pki.ca.sm2 import Sm2PrivateKey
from pki.errors import KeyAccessError

MIN_PASSPHRASE = 12


class KeyStore(Protocol):
    def create(self, slug: str, algorithm: str) -> tuple[SigningKey, str]:
        """Make a new key (where the store keeps keys) and return it with the reference to store."""
        ...

    def load(self, ref: str) -> SigningKey:
        """The private key behind ``ref``; raises KeyAccessError."""
        ...


class FileKeyStore:
    """Encrypted PKCS#8 files, decrypted once per process and kept in memory."""

    def __init__(self, directory: Path, passphrase: Callable[[], str]) -> None:
        self._dir = directory
        self._passphrase = passphrase
        self._secret: bytes | None = None
        self._cache: dict[str, SigningKey] = {}

    def _secret_bytes(self) -> bytes:
        if self._secret is None:
            secret = self._passphrase()
            if len(secret) < MIN_PASSPHRASE:
                raise KeyAccessError(f"the CA key passphrase must have at least {MIN_PASSPHRASE} characters")
            self._secret = secret.encode("utf-8")
        return self._secret

    def create(self, slug: str, algorithm: str) -> tuple[SigningKey, str]:
        key = generate_private_key(algorithm)
        return key, self._save(slug, key)

    def _save(self, slug: str, key: SigningKey) -> str:
        name = f"{slug}.key.pem"
        if isinstance(key, Sm2PrivateKey):
            pem = key.encrypted_pem(self._secret_bytes())
        else:
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(self._secret_bytes()),
            )
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        self._cache[f"file:{name}"] = key
        return f"file:{name}"

    def load(self, ref: str) -> SigningKey:
        if ref in self._cache:
            return self._cache[ref]
        if not ref.startswith("file:"):
            raise KeyAccessError(f"this key store cannot open {ref.split(':', maxsplit=1)[0]!r} keys")
        path = self._dir / ref.removeprefix("file:")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise KeyAccessError(f"CA key {path} cannot be read: {e.strerror}") from e
        key: object
        try:
            key = serialization.load_pem_private_key(data, password=self._secret_bytes())
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            try:  # cryptography knows neither SM4-CBC nor SM2: an SM2 key file, or a wrong passphrase
                key = Sm2PrivateKey.from_pem(data, self._secret_bytes())
            except ValueError:
                raise KeyAccessError(
                    "the CA key passphrase is wrong (or the key file is damaged)", message_zh="CA密钥口令错误"
                ) from e
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Sm2PrivateKey):
            raise KeyAccessError(f"CA key {path} is of an unsupported type")
        self._cache[ref] = key
        return key
