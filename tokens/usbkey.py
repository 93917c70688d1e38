"""A USB key opened for issuing onto it: key pairs generated there, the certificate object written back.

Implements the ``TokenDevice`` protocol of :mod:`pki.services.token_device`. Every PKCS#11 failure is a
TokenError naming what we were doing (wrong PIN, locked, removed, mechanism not supported, full …).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import PyKCS11
from cryptography import x509

from pki.ca.der import integer
from pki.ca.keys import PrivateKey, PublicKey
from pki.errors import TokenError
from tokens import native
from tokens.keys import EC_PARAMS, generate_on_token, read_public_key, token_private_key
from tokens.session import Module, TokenInfo, call

# key type -> (key-pair generation, signing) mechanisms the token must offer
_MECHANISMS = {
    "ec-p256": (PyKCS11.CKM_EC_KEY_PAIR_GEN, PyKCS11.CKM_ECDSA),
    "rsa-2048": (PyKCS11.CKM_RSA_PKCS_KEY_PAIR_GEN, PyKCS11.CKM_RSA_PKCS),
}


class SingleUserSession:
    """The shape token_private_key wants (a session and a lock); one USB key has one user at a time here."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lock = _NoLock()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


class UsbKey:
    """One logged-in read-write session on one token."""

    def __init__(self, module: Module, info: TokenInfo, session: Any) -> None:
        self._module = module
        self._info = info
        self._s = session

    @property
    def serial(self) -> str:
        return self._info.serial

    @property
    def label(self) -> str:
        return self._info.label

    @property
    def model(self) -> str:
        return self._info.model

    # -- objects ----------------------------------------------------------------------------------------

    def objects_labelled(self, label: str) -> list[str]:
        """The classes (privkey, pubkey, cert, …) of objects on the token with this CKA_LABEL."""
        found = call("looking for objects", lambda: self._s.findObjects([(PyKCS11.CKA_LABEL, label)]))
        names = []
        for handle in found:
            cls = self._attribute(handle, PyKCS11.CKA_CLASS)
            names.append(_CLASS_NAMES.get(cls, f"class {cls}"))
        return names

    def objects_with_prefix(self, prefix: str) -> list[tuple[bytes, str, str]]:
        """(CKA_ID, CKA_LABEL, class) of every object whose label starts with ``prefix``, private ones
        included (the session is logged in)."""
        out = []
        for handle in call("looking for objects", lambda: self._s.findObjects([])):
            cls, label, key_id = self._attributes(
                handle, PyKCS11.CKA_CLASS, PyKCS11.CKA_LABEL, PyKCS11.CKA_ID
            )
            if isinstance(label, str) and label.startswith(prefix):
                out.append((bytes(key_id or ()), label, _CLASS_NAMES.get(cls, f"class {cls}")))
        return out

    def generate(self, key_type: str, label: str) -> tuple[bytes, PrivateKey]:
        """A new key pair on the token (sensitive, never extractable, sign only) and its signing key class."""
        needed = _MECHANISMS.get(key_type)
        if needed is None:
            raise TokenError(f"key type {key_type} cannot be generated on a USB key")
        offered = self._module.mechanisms(self._info)
        missing = [PyKCS11.CKM[m] for m in needed if m not in offered]
        if missing:
            raise TokenError(
                f"token {self.label!r} does not support {', '.join(missing)} needed for {key_type}: "
                "choose another --key-type or another USB key model (CKR_MECHANISM_INVALID)",
                message_zh="USB Key不支持该算法",
                ckr="CKR_MECHANISM_INVALID",
            )
        key_id = generate_on_token(self._s, key_type, label, os.urandom(20))
        try:
            return key_id, token_private_key(SingleUserSession(self._s), key_id)
        except BaseException:
            self.remove(key_id)
            raise

    def public_key(self, key_id: bytes) -> PublicKey | None:
        """The public half of the pair ``key_id``, or None when the token has no such key pair."""
        try:
            return read_public_key(self._s, key_id)
        except TokenError as e:
            if e.ckr == "CKR_OBJECT_HANDLE_INVALID":
                return None
            raise

    def has_private_key(self, key_id: bytes) -> bool:
        return bool(self._find(PyKCS11.CKO_PRIVATE_KEY, key_id))

    def signing_key(self, key_id: bytes) -> PrivateKey | None:
        """The signing key class of the key pair ``key_id`` already on the token (a renewal proves with it that
        the old key pair is there), or None when the token has no private key with that CKA_ID."""
        if not self.has_private_key(key_id):
            return None
        return token_private_key(SingleUserSession(self._s), key_id)

    def remove_labelled(self, key_id: bytes, label: str) -> None:
        """Destroy the objects with both this CKA_ID and this CKA_LABEL."""
        if not key_id:
            raise TokenError("refusing to remove objects without a CKA_ID")
        found = call(
            "looking for objects",
            lambda: self._s.findObjects([(PyKCS11.CKA_ID, tuple(key_id)), (PyKCS11.CKA_LABEL, label)]),
        )
        for handle in found:
            self._destroy(handle)

    def remove(self, key_id: bytes) -> None:
        """Destroy every object with this CKA_ID (key pair and certificate)."""
        for handle in call(
            "looking for objects", lambda: self._s.findObjects([(PyKCS11.CKA_ID, tuple(key_id))])
        ):
            self._destroy(handle)

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        """Write the X.509 certificate object beside its key pair (same CKA_ID and CKA_LABEL)."""
        cert = x509.load_der_x509_certificate(der)
        template = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE),
            (PyKCS11.CKA_CERTIFICATE_TYPE, PyKCS11.CKC_X_509),
            (PyKCS11.CKA_TOKEN, True),
            (PyKCS11.CKA_PRIVATE, False),
            (PyKCS11.CKA_MODIFIABLE, True),
            (PyKCS11.CKA_LABEL, label),
            (PyKCS11.CKA_ID, key_id),
            (PyKCS11.CKA_SUBJECT, cert.subject.public_bytes()),
            (PyKCS11.CKA_ISSUER, cert.issuer.public_bytes()),
            (PyKCS11.CKA_SERIAL_NUMBER, integer(cert.serial_number)),
            (PyKCS11.CKA_VALUE, der),
        ]
        call(
            "writing the certificate to the token",
            lambda: native.for_session(self._s).create_object(self._s, template),
        )

    def certificates(self, key_id: bytes) -> list[bytes]:
        """The DER of every certificate object with this CKA_ID (a renewal's write finds the old one too)."""
        return [self._value(handle) for handle in self._find(PyKCS11.CKO_CERTIFICATE, key_id)]

    def remove_certificate(self, key_id: bytes, der: bytes) -> None:
        """Destroy the certificate objects with this CKA_ID whose value is ``der``, and nothing else."""
        for handle in self._find(PyKCS11.CKO_CERTIFICATE, key_id):
            if self._value(handle) == der:
                self._destroy(handle)

    def read_certificate(self, key_id: bytes) -> bytes | None:
        """The DER of the certificate object with this CKA_ID, or None."""
        found = self._find(PyKCS11.CKO_CERTIFICATE, key_id)
        if not found:
            return None
        value = call(
            "reading the certificate back", lambda: self._s.getAttributeValue(found[0], [PyKCS11.CKA_VALUE])
        )[0]
        return bytes(value)

    def _value(self, handle: Any) -> bytes:
        return bytes(
            call(
                "reading the certificate back", lambda: self._s.getAttributeValue(handle, [PyKCS11.CKA_VALUE])
            )[0]
        )

    def _attribute(self, handle: Any, attribute: int) -> Any:
        return self._attributes(handle, attribute)[0]

    def _attributes(self, handle: Any, *attributes: int) -> list[Any]:
        return list(call("reading an object", lambda: self._s.getAttributeValue(handle, list(attributes))))

    def _destroy(self, handle: Any) -> None:
        call("removing an object", lambda: self._s.destroyObject(handle))

    def _find(self, cls: int, key_id: bytes) -> list[Any]:
        return list(
            call(
                "looking for objects",
                lambda: self._s.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_ID, tuple(key_id))]),
            )
        )


_CLASS_NAMES = {
    PyKCS11.CKO_PRIVATE_KEY: "private key",
    PyKCS11.CKO_PUBLIC_KEY: "public key",
    PyKCS11.CKO_CERTIFICATE: "certificate",
    PyKCS11.CKO_DATA: "data",
}


@contextmanager
def open_usb_key(module: Module, info: TokenInfo, pin: str) -> Iterator[UsbKey]:
    """Log in to the token and yield it; logs out and closes the session on exit.

    One pkictl process at a time works on a USB key (a lock file per token serial, held while it is open):
    the key is plugged into this machine, so every process that could touch it is here too. Without it,
    `token clean` could take the new key pair of an issuance running in another process for a leftover.
    """
    with _only_user(info.serial), module.session(info, pin) as session:
        yield UsbKey(module, info, session)


@contextmanager
def _only_user(serial: str) -> Iterator[None]:
    if sys.platform == "win32":  # no fcntl; pkictl is run on Linux desks
        yield
        return
    import fcntl

    name = "".join(c for c in serial if c.isalnum() or c in "-_") or "blank"
    path = Path(tempfile.gettempdir()) / f"pkictl-usbkey-{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise TokenError(
            f"cannot open the lock file {path} of token {serial} ({e.strerror}): another user's pkictl made it; "
            "remove it when no pkictl runs",
            message_zh="无法打开USB Key锁文件",
        ) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TokenError(
                f"token {serial} is in use by another pkictl process (lock {path}): wait until it has finished",
                message_zh="该USB Key正被另一个pkictl进程使用，请稍后再试",
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


__all__ = ["EC_PARAMS", "UsbKey", "open_usb_key"]
