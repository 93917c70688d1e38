"""SoftHSM2 fixtures. The package softhsm2 must be installed (scripts/test and .ci/run install it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import softhsm
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(softhsm.MODULE).exists() or shutil.which("pkcs11-tool") is None:
        pytest.fail(
            "SoftHSM2 and OpenSC are needed: apt-get install softhsm2 opensc (scripts/test does this)"
        )
    return softhsm.configure_once(lambda: tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def token(softhsm_conf: Path) -> softhsm.Token:
    """A fresh, initialized SoftHSM token with a user PIN."""
    return softhsm.new_token(softhsm_conf)


@pytest.fixture
def device(token: softhsm.Token) -> Iterator[UsbKey]:
    """That token opened for issuing onto it (logged in as user)."""
    module = Module(token.module)
    with open_usb_key(module, module.find(label=token.label), token.pin) as key:
        yield key
