"""The audit key at rest: encrypted under its own passphrase, refused clearly when it is wrong, useless
without it, and its header (the first keyed record) bound to the ciphertext."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

import pki.audit_key
from pki.audit_key import AuditKey, PassphraseProtection, create_key_file, open_key_file
from pki.audit_seal import AuditSeal
from pki.errors import KeyAccessError

PASSPHRASE = "audit-key-passphrase"


def _pp(secret: str = PASSPHRASE) -> PassphraseProtection:
    return PassphraseProtection(lambda: secret)


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)


def test_round_trip_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.key"
    made = create_key_file(path, _pp(), keyed_from=7)
    opened = open_key_file(path, _pp())
    assert (opened.secret, opened.key_id, opened.keyed_from) == (made.secret, made.key_id, 7)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert opened.record_mac("a" * 64) == made.record_mac("a" * 64)


def test_the_file_does_not_hold_the_key_in_any_plain_form(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    key = create_key_file(path, _pp(), keyed_from=1)
    data = path.read_bytes()
    for form in (key.secret, key.secret.hex().encode(), base64.b64encode(key.secret)):
        assert form not in data
    assert key.secret.hex() not in repr(key) and repr(key.secret) not in repr(
        key
    )  # nor in logs or tracebacks


def test_a_wrong_passphrase_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    create_key_file(path, _pp(), keyed_from=1)
    with pytest.raises(KeyAccessError, match="the audit key passphrase is wrong") as refused:
        open_key_file(path, _pp("not-the-passphrase"))
    assert refused.value.message_zh == "审计密钥口令错误"


def test_an_edited_header_is_refused(tmp_path: Path) -> None:
    """Moving keyed_from would pass forged records off as older, unkeyed ones: the header is authenticated."""
    path = tmp_path / "audit.key"
    create_key_file(path, _pp(), keyed_from=1)
    document = json.loads(path.read_text())
    document["keyed_from"] = 1000
    path.write_text(json.dumps(document))
    with pytest.raises(KeyAccessError, match="passphrase is wrong \\(or the key file was altered\\)"):
        open_key_file(path, _pp())


@pytest.mark.parametrize("passphrase", ["", "short-11-ch"], ids=["empty", "eleven-characters"])
def test_a_short_passphrase_makes_no_key(tmp_path: Path, passphrase: str) -> None:
    with pytest.raises(KeyAccessError, match="at least 12 characters"):
        create_key_file(tmp_path / "audit.key", _pp(passphrase), keyed_from=1)
    assert not (tmp_path / "audit.key").exists()


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    create_key_file(path, _pp(), keyed_from=1)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        create_key_file(path, _pp(), keyed_from=1)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no audit key at"), ("{}", "is damaged"), ("not json", "cannot be read")],
    ids=["missing", "not-a-key-file", "not-json"],
)
def test_a_missing_or_damaged_file_is_a_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "audit.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyAccessError, match=message):
        open_key_file(path, _pp())


def test_the_seal_unlocks_once_per_process(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    create_key_file(path, _pp(), keyed_from=1)
    asked: list[str] = []

    def passphrase() -> str:
        asked.append("asked")
        return PASSPHRASE

    seal = AuditSeal(path, PassphraseProtection(passphrase), tmp_path / "cp.jsonl")
    assert not seal.unlocked
    assert seal.key() is seal.key()
    assert asked == ["asked"]


def test_the_production_cost_is_what_the_file_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**15)
    path = tmp_path / "audit.key"
    create_key_file(path, _pp(), keyed_from=1)
    kdf = json.loads(path.read_text())["protection"]
    assert (kdf["scheme"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 2**15, 8, 1)
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)  # opening follows the file, not the module
    assert open_key_file(path, _pp()).keyed_from == 1


def test_record_and_checkpoint_macs_use_separate_keys() -> None:
    key = AuditKey(bytes(32), 1)
    assert key.record_mac("x") != key.checkpoint_mac(b"x")
    assert AuditKey(bytes(32), 1).key_id == key.key_id != AuditKey(b"\x01" * 32, 1).key_id
