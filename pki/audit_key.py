"""The audit key: the secret that authenticates every audit record and checkpoint. Never in the database.

Whoever can write the database can recompute a plain hash chain; they cannot compute an HMAC without this
key. It is 32 random bytes kept in the home as ``audit/audit.key``, encrypted with AES-256-GCM under a key
derived from its own passphrase (scrypt) or under an AES key generated on an HSM token of its own, so the
file alone gives nothing. A process unlocks it once
(:class:`pki.audit_seal.AuditSeal`) and then pays an HMAC, about two microseconds, per record.

The file's header (key id, the first keyed record, KDF parameters) is authenticated as the cipher's
associated data: editing ``keyed_from`` to pass forged records off as older, unkeyed ones fails decryption.
"""

from __future__ import annotations

import base64
import errno
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pki.errors import KeyAccessError

MIN_PASSPHRASE = 12
FORMAT = "pkictl-audit-key"
# scrypt cost: about 80 ms and 32 MiB here, once per process that writes. Tests lower it (the cost is kept
# in each file, so a file made cheaply still opens).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.digest(secret, label, "sha256")


@dataclass(frozen=True)
class AuditKey:
    """An unlocked audit key. ``keyed_from`` is the first record it authenticates; records before it were
    written before the home had a key and are sealed by the checkpoint made when it was created."""

    secret: bytes = field(repr=False)
    keyed_from: int
    key_id: str = field(init=False)
    _record_key: bytes = field(init=False, repr=False)
    _checkpoint_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("an audit key is 32 bytes")
        if self.keyed_from < 1:
            raise ValueError("keyed_from is a record number (from 1)")
        # Separate keys per use, so a record MAC can never be replayed as a checkpoint MAC.
        object.__setattr__(self, "key_id", _derive(self.secret, b"pkictl audit key id").hex()[:16])
        object.__setattr__(self, "_record_key", _derive(self.secret, b"pkictl audit record v1"))
        object.__setattr__(self, "_checkpoint_key", _derive(self.secret, b"pkictl audit checkpoint v1"))

    def record_mac(self, record_hash: str) -> str:
        """The MAC of a record: over its hash, which covers every field, its number and the link before it."""
        return hmac.digest(self._record_key, record_hash.encode("ascii"), "sha256").hex()

    def checkpoint_mac(self, body: bytes) -> str:
        return hmac.digest(self._checkpoint_key, body, "sha256").hex()

    def sealing_key(self, purpose: str) -> bytes:
        """A key of its own for sealing another kind of secret kept in the database (a USB key's SO PIN):
        derived from this one, so it is as safe as the audit key and never in the database either."""
        return _derive(self.secret, b"pkictl sealing key v1: " + purpose.encode("ascii"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


class KeyProtection(Protocol):
    """How the audit key is encrypted at rest: under its own passphrase (:class:`PassphraseProtection`), or
    under a key generated on an HSM token of its own (tokens.audit_protection.TokenProtection)."""

    def new(self) -> dict[str, Any]:
        """The ``protection`` entry of a new key file's header (authenticated with the rest of it)."""
        ...

    def encrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes:
        """Raises KeyAccessError when it does not open: a wrong passphrase, another token, an altered file."""
        ...


class PassphraseProtection:
    """AES-256-GCM under a key derived from the passphrase with scrypt (its cost kept in the file)."""

    def __init__(self, passphrase: Callable[[], str]) -> None:
        self._passphrase = passphrase
        self._secret: str | None = None  # asked once: making a key file needs it twice

    def _kek(self, protection: dict[str, Any]) -> bytes:
        if protection.get("scheme") != "scrypt":
            raise KeyAccessError(
                f"the audit key is protected by {protection.get('scheme')!r}, not a passphrase:"
                " see audit.toml [key]"
            )
        if self._secret is None:
            self._secret = self._passphrase()
        try:
            return Scrypt(
                salt=base64.b64decode(protection["salt"]),
                length=32,
                n=int(protection["n"]),
                r=int(protection["r"]),
                p=int(protection["p"]),
            ).derive(self._secret.encode("utf-8"))
        except (KeyError, TypeError, ValueError) as e:
            raise KeyAccessError(f"the audit key file is damaged: {e}") from e

    def new(self) -> dict[str, Any]:
        if self._secret is None:
            self._secret = self._passphrase()
        if len(self._secret) < MIN_PASSPHRASE:
            raise KeyAccessError(
                f"the audit key passphrase must have at least {MIN_PASSPHRASE} characters",
                message_zh=f"审计密钥口令至少{MIN_PASSPHRASE}个字符",
            )
        return {"scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(os.urandom(16))}

    def encrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return AESGCM(self._kek(protection)).encrypt(nonce, data, aad)

    def decrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self._kek(protection)).decrypt(nonce, data, aad)
        except InvalidTag as e:
            raise KeyAccessError(
                "the audit key passphrase is wrong (or the key file was altered)",
                message_zh="审计密钥口令错误",
            ) from e


_HEADER = ("format", "version", "key_id", "keyed_from", "protection")


def create_key_file(path: Path, protection: KeyProtection, *, keyed_from: int) -> AuditKey:
    """Make a new audit key and keep it encrypted at ``path`` (owner-only; never overwrites)."""
    if path.exists():
        raise FileExistsError(errno.EEXIST, "the audit key exists already", str(path))
    key = AuditKey(secrets.token_bytes(32), keyed_from)
    how = protection.new()
    header = {
        "format": FORMAT,
        "version": 1,
        "key_id": key.key_id,
        "keyed_from": keyed_from,
        "protection": how,
    }
    nonce = os.urandom(12)
    sealed = protection.encrypt(how, nonce, key.secret, _header_bytes(header))
    document = {**header, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(document, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def open_key_file(path: Path, protection: KeyProtection) -> AuditKey:
    """Decrypt the audit key. Raises KeyAccessError: no file, a wrong secret, or a damaged file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise KeyAccessError(
            f"no audit key at {path}: run 'pkictl init' (or copy audit/audit.key from the home that made it)",
            message_zh="审计密钥不存在",
        ) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeyAccessError(f"audit key {path} cannot be read: {e}") from e
    try:
        header = {k: document[k] for k in _HEADER}
        if header["format"] != FORMAT or header["version"] != 1 or not isinstance(header["protection"], dict):
            raise ValueError("not a pkictl audit key file")
        nonce, sealed = base64.b64decode(document["nonce"]), base64.b64decode(document["ciphertext"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeyAccessError(f"audit key {path} is damaged: {e}") from e
    secret = protection.decrypt(header["protection"], nonce, sealed, _header_bytes(header))
    key = AuditKey(secret, int(header["keyed_from"]))
    if not secrets.compare_digest(key.key_id, str(header["key_id"])):
        raise KeyAccessError(f"audit key {path} is damaged: its key id does not match the key")
    return key
