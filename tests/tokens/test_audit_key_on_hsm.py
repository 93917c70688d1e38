"""The audit key protected by an HSM token of its own (audit.toml [key] protection = "pkcs11", SoftHSM2): the
file holds it encrypted under an AES key made on the token, which never leaves it."""

from __future__ import annotations

import json
from pathlib import Path

import PyKCS11
import pytest

from pki.audit_key import PassphraseProtection, create_key_file, open_key_file
from pki.bootstrap import initialize
from pki.config import Settings
from pki.errors import KeyAccessError, TokenError
from policies._load import PACKAGED
from tests.support.softhsm import Token
from tokens.audit_protection import TokenProtection
from tokens.session import Module


def _on(token: Token, pin: str | None = None) -> TokenProtection:
    return TokenProtection(token.module, token.label, lambda: pin or token.pin)


def test_made_and_opened_on_the_token(token: Token, tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    made = create_key_file(path, _on(token), keyed_from=1)
    opened = open_key_file(path, _on(token))  # a new process: logs in again
    assert (opened.secret, opened.key_id) == (made.secret, made.key_id)
    protection = json.loads(path.read_text())["protection"]
    assert (protection["scheme"], protection["token"]) == ("pkcs11", token.label)
    module = Module(token.module)
    with module.session(module.find(label=token.label), token.pin) as s:
        [aes] = s.findObjects([(PyKCS11.CKA_ID, tuple(bytes.fromhex(protection["id"])))])
        flags = s.getAttributeValue(
            aes,
            [
                PyKCS11.CKA_SENSITIVE,
                PyKCS11.CKA_EXTRACTABLE,
                PyKCS11.CKA_NEVER_EXTRACTABLE,
                PyKCS11.CKA_LOCAL,
            ],
        )
    assert flags == [True, False, True, True]


def test_a_wrong_pin_is_refused_clearly(token: Token, tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    create_key_file(path, _on(token), keyed_from=1)
    with pytest.raises(TokenError, match="wrong PIN"):
        open_key_file(path, _on(token, "999999"))


def test_the_file_alone_opens_nothing(token: Token, tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    create_key_file(path, _on(token), keyed_from=1)
    with pytest.raises(KeyAccessError, match="protected by 'pkcs11', not a passphrase"):
        open_key_file(path, PassphraseProtection(lambda: token.pin * 3))
    document = json.loads(path.read_text())
    document["keyed_from"] = 50  # the header is bound to the ciphertext
    path.write_text(json.dumps(document))
    with pytest.raises(KeyAccessError, match="does not open with the AES key on token"):
        open_key_file(path, _on(token))


def test_a_home_whose_audit_key_is_on_the_hsm(token: Token, tmp_path: Path) -> None:
    """pkictl init with audit.toml [key] protection = "pkcs11": records keyed, the trail verifies."""
    policies = tmp_path / "policies"
    policies.mkdir()
    text = (PACKAGED / "audit.toml").read_text(encoding="utf-8")
    text = text.replace('protection = "passphrase"', 'protection = "pkcs11"')
    text = text.replace('pkcs11_token_label = "pkictl-audit"', f'pkcs11_token_label = "{token.label}"')
    (policies / "audit.toml").write_text(text, encoding="utf-8")
    home = tmp_path / "home"
    settings = Settings(home, f"sqlite:///{home / 'pki.db'}", policy_dir=policies)
    svc = initialize(settings, lambda: "ca-passphrase-for-the-hsm-test", audit_passphrase=lambda: token.pin)
    try:
        result = svc.audit.verify()
        assert result.ok, result.problems
        assert result.records > 1  # audit.keyed, then the CA hierarchy's records
        assert json.loads((home / "audit" / "audit.key").read_text())["protection"]["scheme"] == "pkcs11"
    finally:
        svc.ctx.engine.dispose()
