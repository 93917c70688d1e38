"""The audit key protected by an HSM: AES-256-GCM under an AES key generated on a token of its own.

The AES key is made on the token (sensitive, never extractable, encrypt/decrypt only) when `pkictl init`
makes the audit key; the key file holds only the audit key encrypted under it and the AES key's CKA_ID. A
process logs in once (the token's user PIN: PKI_AUDIT_PASSPHRASE or a prompt), decrypts the audit key and
then MACs records in memory: an HSM round trip per record would cost more than the write it protects. The
token is the audit key's own, not the CA's: a process that writes records does not hold the CA's PIN.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import PyKCS11

from pki.errors import KeyAccessError, TokenError
from tokens.session import Module, call

LABEL = "pkictl-audit-key"


def _gcm(nonce: bytes, aad: bytes) -> PyKCS11.AES_GCM_Mechanism:
    return PyKCS11.AES_GCM_Mechanism(list(nonce), list(aad), 128)


class TokenProtection:
    """pki.audit_key.KeyProtection over the token labelled ``token_label``."""

    def __init__(self, module_path: str, token_label: str, pin: Callable[[], str]) -> None:
        self._module_path = module_path
        self._label = token_label
        self._pin = pin
        self._secret: str | None = None  # asked once: making a key file logs in twice

    def _run(self, doing: Callable[[Any], bytes]) -> bytes:
        if self._secret is None:
            self._secret = self._pin()
        module = Module(self._module_path)
        with module.session(module.find(label=self._label), self._secret) as session:
            return doing(session)

    def new(self) -> dict[str, Any]:
        key_id = os.urandom(16)
        template = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
            (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
            (PyKCS11.CKA_VALUE_LEN, 32),
            (PyKCS11.CKA_TOKEN, True),
            (PyKCS11.CKA_PRIVATE, True),
            (PyKCS11.CKA_SENSITIVE, True),
            (PyKCS11.CKA_EXTRACTABLE, False),
            (PyKCS11.CKA_ENCRYPT, True),
            (PyKCS11.CKA_DECRYPT, True),
            # SoftHSM and others switch these on unless told otherwise.
            (PyKCS11.CKA_WRAP, False),
            (PyKCS11.CKA_UNWRAP, False),
            (PyKCS11.CKA_SIGN, False),
            (PyKCS11.CKA_VERIFY, False),
            (PyKCS11.CKA_DERIVE, False),
            (PyKCS11.CKA_LABEL, LABEL),
            (PyKCS11.CKA_ID, tuple(key_id)),
        ]
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None)

        def generate(s: Any) -> bytes:
            call("generating the audit key's AES key", lambda: s.generateKey(template, mechanism))
            return b""

        self._run(generate)
        return {"scheme": "pkcs11", "token": self._label, "id": key_id.hex()}

    def _key(self, session: Any, protection: dict[str, Any]) -> Any:
        if protection.get("scheme") != "pkcs11" or protection.get("token") != self._label:
            raise KeyAccessError(
                f"the audit key is not protected by token {self._label!r} (its file says"
                f" {protection.get('scheme')!r} {protection.get('token', '')!r}): see audit.toml [key]"
            )
        key_id = tuple(bytes.fromhex(str(protection.get("id", ""))))
        found = call(
            "looking for the audit key's AES key",
            lambda: session.findObjects(
                [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_ID, key_id)]
            ),
        )
        if not found:
            raise KeyAccessError(f"the audit key's AES key is not on token {self._label!r}")
        return found[0]

    def encrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes:
        def sealed(s: Any) -> bytes:
            key = self._key(s, protection)
            return bytes(
                call("encrypting the audit key", lambda: s.encrypt(key, list(data), _gcm(nonce, aad)))
            )

        return self._run(sealed)

    def decrypt(self, protection: dict[str, Any], nonce: bytes, data: bytes, aad: bytes) -> bytes:
        def opened(s: Any) -> bytes:
            key = self._key(s, protection)
            try:
                return bytes(
                    call("decrypting the audit key", lambda: s.decrypt(key, list(data), _gcm(nonce, aad)))
                )
            except TokenError as e:  # tokens report a failed tag variously (SoftHSM: CKR_GENERAL_ERROR)
                raise KeyAccessError(
                    f"the audit key file does not open with the AES key on token {self._label!r}"
                    " (the file was altered)",
                    message_zh="审计密钥文件已被改动",
                ) from e

        return self._run(opened)
