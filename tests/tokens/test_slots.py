"""Finding tokens among the slots when one of the keys is faulty (SoftHSM2: its token files deleted while the
module is loaded, as a key pulled out half-way leaves it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pki.errors import TokenError
from tests.support import softhsm
from tokens.session import Module


def _pull_out(token: softhsm.Token) -> None:
    tokens = token.conf.parent / "tokens"
    [files] = [d for d in tokens.iterdir() if token.label.encode() in (d / "token.object").read_bytes()]
    shutil.rmtree(files)


def test_a_faulty_key_does_not_hide_the_others(softhsm_conf: Path, token: softhsm.Token) -> None:
    broken = softhsm.new_token(softhsm_conf)
    module = Module(token.module)
    slot = module.find(label=broken.label).slot
    _pull_out(broken)

    scan = module.scan()
    serials = {t.serial for t in scan.tokens}
    assert token.serial in serials and broken.serial not in serials
    # Other tests in this process may have left faulty slots too: this one is among the faults.
    [fault] = [f for f in scan.faults if f"reading the token in slot {slot}:" in f.message]
    assert fault.ckr == "CKR_GENERAL_ERROR"
    assert module.find(label=token.label).serial == token.serial
    # A new token can still be made beside the broken slot (what the next test in this process does).
    assert softhsm.new_token(softhsm_conf).serial not in serials


def test_looking_for_the_faulty_key_says_a_slot_could_not_be_read(
    softhsm_conf: Path, token: softhsm.Token
) -> None:
    broken = softhsm.new_token(softhsm_conf)
    module = Module(token.module)
    _pull_out(broken)
    with pytest.raises(TokenError) as missing:
        module.find(serial=broken.serial)
    assert missing.value.ckr == "CKR_TOKEN_NOT_PRESENT"
    assert f"no token with serial {broken.serial!r} is present" in missing.value.message
    assert "still plugged in" in missing.value.message
