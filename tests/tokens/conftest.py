"""SoftHSM2 fixtures. The package softhsm2 must be installed (scripts/test and .ci/run install it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import softhsm


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(softhsm.MODULE).exists() or shutil.which("pkcs11-tool") is None:
        pytest.fail(
            "SoftHSM2 and OpenSC are needed: apt-get install softhsm2 opensc (scripts/test does this)"
        )
    return softhsm.configure(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def token(softhsm_conf: Path) -> softhsm.Token:
    """A fresh, initialized SoftHSM token with a user PIN."""
    return softhsm.new_token(softhsm_conf)
