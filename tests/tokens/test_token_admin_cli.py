"""`pkictl token init` and `pkictl token register-so-pin` on SoftHSM2: the SO PIN made or checked on the
key, kept by the center, and never printed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.bootstrap import open_service
from pki.config import Settings
from pki.db import make_engine
from tests.cli.conftest import (  # noqa: F401 - the CLI's fixtures, over SoftHSM's session token directory
    cheap_audit_key_derivation,
    cheap_password_hashing,
    cli,
    engines,
    home,
    staffed,
)
from tests.cli.runner import AUDIT_PASSPHRASE, PASSWORD, Cli, process_env
from tests.support import softhsm
from tokens import admin
from tokens.session import Module


@pytest.fixture
def ops_home(staffed: Cli) -> Cli:  # noqa: F811 - the imported fixture
    staffed.add_user("keeper", "ops")
    return staffed


def so_pins(at: Cli) -> list[str]:
    engine = make_engine(at.db_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT serial FROM token_so_pin ORDER BY serial"))]
    finally:
        engine.dispose()


def test_a_blank_key_initialised_from_the_cli(
    ops_home: Cli, softhsm_conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", "123")
    short = ops_home("token", "init", "--module", softhsm.MODULE, "--token-label", "x", "--as", "keeper")
    assert short.code == 2 and "6 to 16 characters" in short.err
    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", "246810")
    refused = ops_home("token", "init", "--module", softhsm.MODULE, "--token-label", "y", "--as", "clerk")
    assert refused.code == 1 and "has no role that may token admin" in refused.err
    module = Module(softhsm.MODULE)
    assert all(t.label != "y" for t in module.tokens())  # refused before the key was touched
    label = f"fresh-{uuid.uuid4().hex[:8]}"
    done = ops_home.json(
        "token", "init", "--module", softhsm.MODULE, "--token-label", label, "--as", "keeper"
    )
    assert done["label"] == label and done["serial"] in so_pins(ops_home)
    module = Module(softhsm.MODULE)
    info = module.find(label=label)
    with module.session(info, "246810"):
        pass  # the holder's PIN works


def test_register_an_so_pin_checked_on_the_key(
    ops_home: Cli, token: softhsm.Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = (
        "token",
        "register-so-pin",
        "--module",
        softhsm.MODULE,
        "--token-serial",
        token.serial,
        "--as",
        "keeper",
    )
    monkeypatch.setenv("PKI_TOKEN_SO_PIN", "not-the-so-pin")
    wrong = ops_home(*args)
    assert wrong.code == 1 and "refused its SO PIN" in wrong.err and token.serial not in so_pins(ops_home)
    monkeypatch.setenv("PKI_TOKEN_SO_PIN", token.so_pin)
    done = ops_home(*args)
    assert (
        done.code == 0
        and done.out == f"token {token.label} (serial {token.serial}): SO PIN on record at the center\n"
    )
    assert token.so_pin not in done.out + done.err
    again = ops_home(*args)
    assert again.code == 1 and "already has its SO PIN on record" in again.err
    # The center hands it back for an unblock (sealed under the home's audit key), and the key takes it.
    env = process_env(ops_home.home, ops_home.db_url)
    svc = open_service(Settings.from_env(env), audit_passphrase=lambda: AUDIT_PASSPHRASE)
    try:
        keeper = svc.users.authenticate("keeper", PASSWORD)
        with svc.ctx.write() as s:
            pins = svc.token_secrets.for_unblock(s, token.serial, actor=keeper)
    finally:
        svc.ctx.engine.dispose()
    module = Module(softhsm.MODULE)
    admin.check_so_pin(module, module.find(serial=token.serial), pins.current[0])
