"""`pkictl token unlock` on SoftHSM2, end to end through the CLI on SQLite and PostgreSQL: a certificate issued
onto the key, the holder's PIN changed behind pkictl's back, an unlock deal entered and accepted, then
carried out by the distributor. The holder's new PIN opens the key, the key pair and certificate stay
(pkcs11-tool as the judge), the deal completes, the SO PIN changes, and no PIN is printed, in the audit
trail or in plain text in the database file. A desk that stopped before telling the center finishes on a
rerun."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.bootstrap import open_service
from pki.config import Settings
from pki.db import make_engine
from pki.services import Service
from tests.cli.conftest import (  # noqa: F401 - the CLI's fixtures, over SoftHSM's session token directory
    cheap_audit_key_derivation,
    cheap_password_hashing,
    cli,
    engines,
    home,
    staffed,
)
from tests.cli.runner import AUDIT_PASSPHRASE, PASSWORD, Cli, process_env
from tests.cli.test_token_cli import SOFTHSM, approved
from tests.support import softhsm
from tests.support.pki import on_record
from tests.tokens.test_token_unlock import logs_in, so_logs_in
from tokens import admin
from tokens.session import Module

NEW_PIN = "246810"
CHANGED_PIN = "999999"  # what the holder set, and forgot


@pytest.fixture
def desk_home(staffed: Cli) -> Cli:  # noqa: F811 - the imported fixture
    staffed.add_user("dist", "distributor")
    return staffed


@pytest.fixture
def center(desk_home: Cli) -> Iterator[Service]:
    """The center's service over the home (as its host sees it), for what a test must look at directly."""
    env = process_env(desk_home.home, desk_home.db_url)
    svc = open_service(Settings.from_env(env), audit_passphrase=lambda: AUDIT_PASSPHRASE)
    yield svc
    svc.ctx.engine.dispose()


def issued_onto(at: Cli, tmp_path: Path, token: softhsm.Token, monkeypatch: pytest.MonkeyPatch) -> str:
    """A certificate issued onto ``token`` through the CLI, its SO PIN registered: the certificate's serial."""
    monkeypatch.setenv("PKI_TOKEN_SO_PIN", token.so_pin)
    key = ("--module", softhsm.MODULE, "--token-serial", token.serial)
    at.ok("token", "register-so-pin", *key, "--as", "dist")
    monkeypatch.setenv("PKI_TOKEN_PIN", token.pin)
    rid = approved(at, tmp_path, usbkey=SOFTHSM)
    done = at.json(
        "issue", str(rid), "--module", softhsm.MODULE, "--token-label", token.label, "--as", "dist"
    )
    return str(done["serial"])


def unlock_deal(at: Cli, serial: str) -> int:
    entered = at.json("request", "new", "--type", "unlock", "--serial", serial, "--as", "clerk")
    rid = int(entered["id"])
    accepted = at.json(
        "request", "accept", str(rid), "--opinion", "agree", "--usbkey", SOFTHSM, "--as", "acceptor"
    )
    assert accepted["state"] == "approved"  # workflow.toml [deals.unlock] steps = []
    return rid


def request_state(at: Cli, rid: int) -> str:
    return str(at.json("request", "show", str(rid))["state"])


def test_unlock_end_to_end(
    desk_home: Cli,
    center: Service,
    token: softhsm.Token,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serial = issued_onto(desk_home, tmp_path, token, monkeypatch)
    before = softhsm.pkcs11_tool(token, "-O")
    module = Module(softhsm.MODULE)
    info = module.find(serial=token.serial)
    with module.session(info, token.pin) as s:  # the holder's PIN changed behind pkictl's back
        s.setPin(token.pin, CHANGED_PIN)
    unlock = ("token", "unlock", "--module", softhsm.MODULE, "--token-label", token.label)
    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", NEW_PIN)

    none = desk_home(*unlock, "--as", "dist")  # no deal yet: refused, naming how to enter one
    assert none.code == 1 and f"'pkictl request new --type unlock --serial {serial}'" in none.err
    rid = unlock_deal(desk_home, serial)
    for who in ("clerk", "acceptor", "reviewer"):  # [deals.unlock] roles.complete: distributor, ops
        refused = desk_home(*unlock, "--as", who)
        assert refused.code == 1 and "has no role that may complete on a unlock deal" in refused.err
    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", "123")
    short = desk_home(*unlock, "--as", "dist")
    assert short.code == 2 and "6 to 16 characters" in short.err
    assert logs_in(module, info, CHANGED_PIN) and so_logs_in(module, info, token.so_pin)  # untouched
    assert request_state(desk_home, rid) == "approved"

    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", NEW_PIN)
    done = desk_home.ok(*unlock, "--as", "dist")
    assert done.out == (
        f"token {token.label} (serial {token.serial}) unlocked: the holder's new PIN is set; unlock deal "
        f"{rid} on certificate {serial} is completed\n"
    )
    assert request_state(desk_home, rid) == "completed"
    assert logs_in(module, info, NEW_PIN)
    assert not logs_in(module, info, CHANGED_PIN) and not logs_in(module, info, token.pin)
    assert (
        softhsm.pkcs11_tool(token, "-O", pin=NEW_PIN) == before
    )  # the key pair and certificate stay, as they were
    assert "Private Key Object" in before and "Certificate Object" in before
    (new_so_pin,) = on_record(center, token.serial, center.users.authenticate("dist", PASSWORD))
    assert new_so_pin != token.so_pin
    assert so_logs_in(module, info, new_so_pin) and not so_logs_in(module, info, token.so_pin)
    again = desk_home(*unlock, "--as", "dist")
    assert again.code == 1 and "has no approved unlock deal" in again.err

    secrets = (token.so_pin, new_so_pin, NEW_PIN, CHANGED_PIN)
    assert not any(p in done.out + done.err for p in secrets)
    engine = make_engine(desk_home.db_url)
    try:
        with engine.connect() as conn:
            details = [r[0] for r in conn.execute(text("SELECT details FROM audit_record"))]
    finally:
        engine.dispose()
    assert details and not any(p in str(d) for d in details for p in secrets)
    if desk_home.db_url.startswith("sqlite:///"):
        path = Path(desk_home.db_url.removeprefix("sqlite:///"))
        stored = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*"))  # with -wal, -journal
        assert not any(p.encode() in stored for p in (token.so_pin, new_so_pin))


def test_a_rerun_finishes_what_a_stopped_desk_began(
    desk_home: Cli,
    center: Service,
    token: softhsm.Token,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serial = issued_onto(desk_home, tmp_path, token, monkeypatch)
    rid = unlock_deal(desk_home, serial)
    module = Module(softhsm.MODULE)
    info = module.find(serial=token.serial)
    # The desk began and did the key's work (C_InitPIN, C_SetPIN), then died before telling the center.
    dist = center.users.authenticate("dist", PASSWORD)
    plan = center.unlock.begin(token.serial, actor=dist)
    admin.unblock(module, info, so_pins=plan.so_pins, new_user_pin="135791", new_so_pin=plan.new_so_pin)
    assert request_state(desk_home, rid) == "approved"

    monkeypatch.setenv("PKI_NEW_TOKEN_PIN", NEW_PIN)
    done = desk_home.json(
        "token", "unlock", "--module", softhsm.MODULE, "--token-serial", token.serial, "--as", "dist"
    )
    assert done == {
        "request_id": rid,
        "serial": serial,
        "token_serial": token.serial,
        "state": "completed",
        "so_pin_changed": True,
    }
    assert logs_in(module, info, NEW_PIN) and so_logs_in(module, info, plan.new_so_pin)
    assert on_record(center, token.serial, dist) == (plan.new_so_pin,)
