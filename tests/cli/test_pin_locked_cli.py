"""`pkictl issue` onto a USB key whose holder's PIN is locked: refused before anything is generated or
recorded, with the deal that fixes the key named (an unlock deal for the certificate of ours it holds, else
initialising it again).

SoftHSM2 never locks a PIN, so the key is a SoftHSM2 token seen through a PKCS#11 module of the tests' own
(tests/support/pin_locked_pkcs11.c) that reports CKF_USER_PIN_LOCKED for it and refuses the user's log-in
with CKR_PIN_LOCKED; pkictl loads that module by path (--module), like any USB key's driver, in a real
subprocess over a token directory of the test's own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.runner import Cli
from tests.cli.test_ca_cli import enter
from tests.cli.test_token_cli import (
    SOFTHSM,
    approved,
    listing,
    make_tokens,
    pkictl,
    shim,
    state,
)
from tests.support import pin_double
from tests.support.pin_double import LockedDouble
from tests.support.softhsm import SO_PIN

NEW_PIN = "654321"


@pytest.fixture
def desk(staffed: Cli) -> Cli:
    """The staffed home plus 'dist', a distributor."""
    staffed.add_user("dist", "distributor")
    return staffed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> LockedDouble:
    return pin_double.build(tmp_path_factory.mktemp("pin-double"))


@pytest.fixture
def double(built: LockedDouble, tmp_path: Path) -> LockedDouble:
    """The module, compiled once for this file; the list of locked keys, the test's own."""
    return LockedDouble(built.module, tmp_path / "locked-serials")


def approved_for(cli: Cli, tmp_path: Path, unit_of: int) -> int:
    """Another approved request of the unit of request ``unit_of`` (a renewal onto the same key, say)."""
    shown = cli.json("request", "show", str(unit_of))
    rid = enter(cli, tmp_path, credential_number=shown["credential_number"], unit_name=shown["unit_name"])
    cli.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", SOFTHSM, "--as", "acceptor")
    cli.ok("request", "countersign", str(rid), "--as", "head")
    cli.ok("request", "review", str(rid), "--approve", "--as", "reviewer")
    return rid


def audit_trail(cli: Cli) -> list[Any]:
    return list(cli.json("audit", "show"))


def test_a_locked_key_holding_our_certificate_names_the_unlock_deal(
    desk: Cli, tmp_path: Path, double: LockedDouble
) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    [serial] = tokens.serials()
    first = approved(desk, tmp_path)
    issued = pkictl(desk, tokens, "issue", str(first), "--as", "dist", "--token-serial", serial, "--json")
    assert issued.code == 0, issued
    held = issued.json()["serial"]
    desk.ok("distribute", str(first), "--recipient", "王五", "--as", "dist")
    rid = approved_for(desk, tmp_path, first)
    double.lock(serial)
    before = audit_trail(desk)
    objects = listing(tokens, "USBKEY-0")
    issue = ("issue", str(rid), "--as", "dist", "--module", double.module, "--token-serial", serial)
    # Reported locked (CKF_USER_PIN_LOCKED): refused before the PIN is asked for; a key that only refuses
    # the log-in (CKR_PIN_LOCKED) is refused the same way.
    for mode in ("locked", "refuses"):
        refused = pkictl(desk, tokens, *issue, env=double.env(mode))
        assert refused.code == 1, refused
        assert f"token {serial}'s user PIN is locked" in refused.err, refused
        assert f"'pkictl request new --type unlock --serial {held} --as USER'" in refused.err, refused
        assert f"'pkictl token unlock --token-serial {serial} --as USER'" in refused.err, refused
        assert "token init" not in refused.err and "Traceback" not in refused.err, refused
        assert len(refused.err.strip().splitlines()) == 1, refused
    # Nothing written: the request still approved, no certificate for it, the key as it was.
    assert state(desk, rid) == "approved" and desk.json("cert", "list", "--request", str(rid)) == []
    assert listing(tokens, "USBKEY-0") == objects and f"pkictl-{rid}-" not in objects
    after = audit_trail(desk)
    assert after[: len(before)] == before
    logins = {r["action"] for r in after[len(before) :]}
    assert logins == {"auth.login"}  # the distributor's, and nothing else


def test_a_locked_key_holding_nothing_of_ours_names_token_init(
    desk: Cli, tmp_path: Path, double: LockedDouble
) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    [serial] = tokens.serials()
    rid = approved(desk, tmp_path)
    double.lock(serial)
    issue = ("issue", str(rid), "--as", "dist", "--module", double.module, "--token-serial", serial)
    refused = pkictl(desk, tokens, *issue, env=double.env())
    assert refused.code == 1, refused
    assert f"token {serial}'s user PIN is locked" in refused.err, refused
    assert f"'pkictl token init --again --token-serial {serial} " in refused.err, refused
    assert "--type unlock" not in refused.err and "Traceback" not in refused.err, refused
    # The approved queue onto the keys present: the locked one fails with the same words.
    batch = pkictl(
        desk, tokens, "issue", "--all-approved", "--as", "dist", "--module", double.module, env=double.env()
    )
    assert (
        batch.code == 1 and f"request {rid} -> token {serial}: failed: token {serial}'s user" in batch.out
    ), batch
    assert f"'pkictl token init --again --token-serial {serial} " in batch.out, batch
    assert state(desk, rid) == "approved" and desk.json("cert", "list") == []
    assert "Object" not in listing(tokens, "USBKEY-0")
    # One wrong PIN from locking (CKF_USER_PIN_FINAL_TRY): said before the log-in, which goes through.
    last = pkictl(desk, tokens, *issue, env=double.env("final-try"))
    assert last.code == 0 and f"warning: token {serial}: last try" in last.err, last
    assert state(desk, rid) == "issued"


def test_a_locked_key_holding_nothing_of_ours_is_initialised_again(
    desk: Cli, tmp_path: Path, double: LockedDouble
) -> None:
    """`pkictl token init --again`: erased and initialised with the SO PIN the center keeps; refused while
    the key holds a good certificate of ours (an unlock deal keeps that key pair)."""
    tokens = make_tokens(tmp_path / "hsm", 1)
    [serial] = tokens.serials()
    registered = pkictl(
        desk, tokens, "token", "register-so-pin", "--token-serial", serial, "--as", "dist",
        env={"PKI_TOKEN_SO_PIN": SO_PIN},
    )  # fmt: skip
    assert registered.code == 0, registered
    double.lock(serial)
    again = (
        "token", "init", "--again", "--token-serial", serial, "--token-label", "RESET-0",
        "--module", double.module, "--as", "dist",
    )  # fmt: skip
    done = pkictl(desk, tokens, *again, env={**double.env(), "PKI_NEW_TOKEN_PIN": NEW_PIN})
    assert done.code == 0 and f"token RESET-0 (serial {serial}) erased and initialised again" in done.out, (
        done
    )
    assert double.serials() == []  # the holder's PIN set anew: no longer locked
    assert SO_PIN not in done.out + done.err
    rid = approved(desk, tmp_path)
    issued = pkictl(
        desk, tokens, "issue", str(rid), "--as", "dist", "--token-serial", serial, "--json", pin=NEW_PIN
    )
    assert issued.code == 0, issued
    desk.ok("distribute", str(rid), "--recipient", "王五", "--as", "dist")
    refused = pkictl(desk, tokens, *again, env={**double.env(), "PKI_NEW_TOKEN_PIN": NEW_PIN})
    assert refused.code == 1 and f"holds certificate {issued.json()['serial']}" in refused.err, refused
    assert "--type unlock" in refused.err
    assert f"pkictl-{rid}-" in listing(tokens, "RESET-0", NEW_PIN)  # nothing erased
    actions = [r["action"] for r in audit_trail(desk)]
    assert "token.reset" in actions and all(SO_PIN not in str(r) for r in audit_trail(desk))


def test_resuming_onto_a_locked_key_then_unblocked(desk: Cli, tmp_path: Path, double: LockedDouble) -> None:
    """Killed after the certificate was recorded, and the key locked before --resume: the unlock deal names
    the certificate waiting for it (the unlock keeps its key pair); once the SO set a new PIN, resumed."""
    tokens = make_tokens(tmp_path / "hsm", 1)
    [serial] = tokens.serials()
    rid = approved(desk, tmp_path)
    kill = shim(tmp_path / "shim", "    os.kill(os.getpid(), signal.SIGKILL)")
    killed = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-serial", serial, shim=kill)
    assert killed.code < 0, killed
    [waiting] = desk.json("cert", "list", "--request", str(rid))
    double.lock(serial)
    resume = (
        "issue",
        str(rid),
        "--resume",
        "--as",
        "dist",
        "--module",
        double.module,
        "--token-serial",
        serial,
    )
    refused = pkictl(desk, tokens, *resume, env=double.env())
    assert refused.code == 1, refused
    assert f"--type unlock --serial {waiting['serial']} --as USER" in refused.err, refused
    assert desk.json("cert", "show", waiting["serial"])["token"]["delivered"] is False
    assert "Certificate Object" not in listing(tokens, "USBKEY-0")
    # The SO sets a new user PIN through the same module (C_InitPIN): the key is no longer locked.
    subprocess.run(
        ["pkcs11-tool", "--module", double.module, "--token-label", "USBKEY-0", "--login", "--login-type",
         "so", "--so-pin", SO_PIN, "--init-pin", "--new-pin", NEW_PIN],
        check=True, capture_output=True, env={**tokens.env(), **double.env()},
    )  # fmt: skip
    assert double.serials() == []
    resumed = pkictl(desk, tokens, *resume, "--json", env=double.env(), pin=NEW_PIN)
    assert resumed.code == 0 and resumed.json()["serial"] == waiting["serial"], resumed
    assert state(desk, rid) == "issued"


def test_the_double_reports_what_a_locked_key_does(tmp_path: Path, double: LockedDouble) -> None:
    """The double itself, judged by OpenSC's pkcs11-tool: the flag in the token info, the log-in refused."""
    tokens = make_tokens(tmp_path / "hsm", 2)
    double.lock(tokens.serials()[0])  # USBKEY-0's
    env = {**tokens.env(), **double.env()}
    slots = subprocess.run(
        ["pkcs11-tool", "--module", double.module, "--list-token-slots"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout  # fmt: skip
    flags = {
        label: next(ln for ln in slots.split(f": {label}\n")[1].splitlines() if "token flags" in ln)
        for label in tokens.labels
    }
    assert "user PIN locked" in flags["USBKEY-0"] and "user PIN locked" not in flags["USBKEY-1"], slots
    login = subprocess.run(
        ["pkcs11-tool", "--module", double.module, "--token-label", "USBKEY-0", "--login", "--pin",
         "123456", "-O"],
        check=False, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert login.returncode != 0 and "CKR_PIN_LOCKED" in login.stderr + login.stdout, login
