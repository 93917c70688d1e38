"""A desk issuing through the API onto a USB key whose holder's PIN is locked: the center names the unlock
deal for the certificate the key holds (operation token.locked), and nothing is issued or written. The key
is SoftHSM2 behind the tests' locked-PIN module (tests/support/pin_locked_pkcs11.c)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pki.enums import Action
from tests.api.test_remote_issuance import certificates_of
from tests.cli.test_token_cli import listing, make_tokens
from tests.support import pin_double
from tests.support.data import application, make_uscc
from tests.support.server import PASSWORD, DeskProcess, center_env, center_service, prepare_home, serving
from tests.support.softhsm import USER_PIN


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> dict[str, str]:
    prepare_home(tmp_path / "home", db_url)
    return center_env(tmp_path / "home", db_url)


def approved_for(env: dict[str, str], credential: str, unit: str) -> int:
    svc = center_service(env)
    try:
        who = {
            r: svc.users.authenticate(f"u-{r}", PASSWORD) for r in ("entry", "acceptor", "head", "reviewer")
        }
        req = svc.requests.create(
            application(credential_number=credential, unit_name=unit), actor=who["entry"]
        )
        assert req.id is not None
        svc.requests.accept(req.id, actor=who["acceptor"], agree=True, usbkey_model="SoftHSM2")
        svc.requests.countersign(req.id, actor=who["head"])
        svc.requests.review(req.id, actor=who["reviewer"], decision=Action.APPROVE)
        return req.id
    finally:
        svc.ctx.engine.dispose()


def test_a_desk_meets_a_locked_key(home: dict[str, str], tmp_path: Path) -> None:
    double = pin_double.build(tmp_path / "double")
    tokens = make_tokens(tmp_path / "hsm", 1)
    [serial] = tokens.serials()
    credential, unit = make_uscc("110101", "86100001"), "某锁定测试单位"
    first = approved_for(home, credential, unit)
    with serving(home) as base:
        env = {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN, **double.env()}
        desk = DeskProcess(base, tmp_path / "desk", env)
        desk("login", "--server", base, "--as", "u-distributor", check=True)
        issue = ("--token-serial", serial, "--as", "u-distributor")
        held = desk("issue", str(first), *issue, "--json", check=True).json()["serial"]
        desk("distribute", str(first), "--recipient", "王五", "--as", "u-distributor", check=True)
        rid = approved_for(home, credential, unit)
        double.lock(serial)
        objects = listing(tokens, "USBKEY-0")
        refused = desk("issue", str(rid), "--module", double.module, *issue)
        assert refused.code == 1, refused
        assert f"token {serial}'s user PIN is locked" in refused.err, refused
        assert f"'pkictl request new --type unlock --serial {held} --as USER'" in refused.err, refused
        assert "Traceback" not in refused.err, refused
        assert certificates_of(home, rid) == [] and listing(tokens, "USBKEY-0") == objects
        shown = desk("request", "show", str(rid), "--json", check=True).json()
        assert shown["state"] == "approved"
