"""CA keys kept on a PKCS#11 HSM: generated there, referenced by token label and CKA_ID, used in place."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pki.ca.keys import PrivateKey
from pki.errors import KeyAccessError
from tokens.keys import generate_on_token, token_private_key
from tokens.session import Module, SharedSession


class Pkcs11KeyStore:
    """The KeyStore protocol over one HSM token (SoftHSM2 in tests). References look like
    ``pkcs11:token=LABEL;id=HEX``; the user PIN comes from ``pin`` (PKI_HSM_PIN or a prompt) on first use."""

    def __init__(self, module_path: str, token_label: str, pin: Callable[[], str]) -> None:
        self._module_path = module_path
        self._label = token_label
        self._pin = pin
        self._shared: SharedSession | None = None
        self._cache: dict[str, PrivateKey] = {}
        self._opening = threading.Lock()

    def _session(self) -> SharedSession:
        with self._opening:
            if self._shared is None:
                module = Module(self._module_path)
                self._shared = SharedSession(module, module.find(label=self._label), self._pin())
            return self._shared

    def create(self, slug: str, algorithm: str) -> tuple[PrivateKey, str]:
        shared = self._session()
        with shared.lock:
            key_id = generate_on_token(shared.raw, algorithm, label=slug)
        ref = f"pkcs11:token={self._label};id={key_id.hex()}"
        key = token_private_key(shared, key_id)
        self._cache[ref] = key
        return key, ref

    def load(self, ref: str) -> PrivateKey:
        if ref in self._cache:
            return self._cache[ref]
        fields = dict(part.split("=", 1) for part in ref.removeprefix("pkcs11:").split(";") if "=" in part)
        if not ref.startswith("pkcs11:") or fields.get("token") != self._label or "id" not in fields:
            raise KeyAccessError(f"key {ref!r} is not on the configured HSM token {self._label!r}")
        key = token_private_key(self._session(), bytes.fromhex(fields["id"]))
        self._cache[ref] = key
        return key

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None
