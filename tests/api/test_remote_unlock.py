"""`pkictl token unlock` from a remote desk through a real `pkictl serve`: the desk holds the SoftHSM2 key and
nothing of the center's; the SO PINs travel in one answer that the center never keeps (no Idempotency-Key
record holds them), and the deal completes on the center."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.api.test_remote_desk import desks
from tests.api.test_remote_issuance import approved_request
from tests.cli.test_token_cli import Tokens, make_tokens
from tests.support.pki import on_record
from tests.support.server import PASSWORD, center_env, center_service, prepare_home, serving
from tests.support.softhsm import MODULE, SO_PIN, USER_PIN

NEW_PIN = "246810"


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> dict[str, str]:
    prepare_home(tmp_path / "home", db_url)
    return center_env(tmp_path / "home", db_url)


def pkcs11(tokens: Tokens, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", "USBKEY-0", *args],
        capture_output=True,
        text=True,
        check=False,
        env=tokens.env(),
        timeout=60,
    )


def so_logs_in(tokens: Tokens, so_pin: str) -> bool:
    """C_Login as SO (and C_SetPIN to the same SO PIN: pkcs11-tool logs in as SO only for a change)."""
    done = pkcs11(
        tokens, "--login", "--login-type", "so", "--so-pin", so_pin, "--change-pin", "--new-pin", so_pin
    )
    return done.returncode == 0


def test_a_remote_desk_unlocks_its_key(home: dict[str, str], tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid = approved_request(home)
    with serving(home) as base:
        at = desks(base, tmp_path, "entry", "acceptor", "distributor")
        dist = at["distributor"]
        dist.env |= {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN, "PKI_TOKEN_SO_PIN": SO_PIN}
        key = ("--token-label", "USBKEY-0", "--as", "u-distributor")
        dist("token", "register-so-pin", *key, check=True)
        serial = dist("issue", str(rid), *key, "--json", check=True).json()["serial"]
        changed = pkcs11(tokens, "--login", "--pin", USER_PIN, "--change-pin", "--new-pin", "999999")
        assert changed.returncode == 0, changed.stderr  # behind pkictl's back
        deal = at["entry"](
            "request", "new", "--type", "unlock", "--serial", serial, "--as", "u-entry", "--json"
        )
        deal_id = deal.json()["id"]
        accept = ("request", "accept", str(deal_id), "--opinion", "agree", "--usbkey", "SoftHSM2")
        at["acceptor"](*accept, "--as", "u-acceptor", check=True)
        dist.env["PKI_NEW_TOKEN_PIN"] = NEW_PIN
        done = dist("token", "unlock", *key, "--json", check=True).json()
        assert done["request_id"] == deal_id and done["state"] == "completed" and done["so_pin_changed"]
        shown = at["entry"]("request", "show", str(deal_id), "--json", check=True).json()
        assert shown["state"] == "completed"
    objects = pkcs11(tokens, "--login", "--pin", NEW_PIN, "-O")
    assert objects.returncode == 0 and "Private Key Object" in objects.stdout
    assert "Certificate Object" in objects.stdout
    assert pkcs11(tokens, "--login", "--pin", "999999", "-O").returncode != 0
    svc = center_service(home)
    try:
        dist_actor = svc.users.authenticate("u-distributor", PASSWORD)
        (new_so_pin,) = on_record(svc, tokens.serials()[0], dist_actor)
        with svc.ctx.engine.connect() as conn:
            kept = [r[0] or "" for r in conn.execute(text("SELECT response FROM idempotency_record"))]
            kept_ops = {r[0] for r in conn.execute(text("SELECT operation FROM idempotency_record"))}
            details = [str(r[0]) for r in conn.execute(text("SELECT details FROM audit_record"))]
    finally:
        svc.ctx.engine.dispose()
    assert kept  # the other writes' answers were kept; the SO PINs' answer was not
    # nor a hash of the request that registered an SO PIN (a short one could be found from it)
    assert "token.so_pin.register" not in kept_ops and "token.unlock.begin" not in kept_ops
    for secret in (SO_PIN, new_so_pin, NEW_PIN):
        assert not any(secret in k for k in kept) and not any(secret in d for d in details)
    assert not so_logs_in(tokens, SO_PIN) and so_logs_in(tokens, new_so_pin)
