"""`pkictl renew SERIAL --token-label L` from a remote desk through a real `pkictl serve` (SQLite and
PostgreSQL): the desk holds the SoftHSM2 key and nothing of the center's. A renew deal is carried out onto the
key that holds the old key pair; the desk is killed between the center's issuance and the write, and
`--resume` finishes it: issued once, the key pair unchanged, the new certificate object the record's."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.api.test_remote_desk import desks
from tests.api.test_remote_issuance import approved_request
from tests.cli.test_renew_onto_key_cli import certificates, key_pair, objects, open_window
from tests.cli.test_token_cli import make_tokens, shim
from tests.support import with_shim
from tests.support.server import center_env, center_service, prepare_home, serving
from tests.support.softhsm import MODULE, USER_PIN


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> dict[str, str]:
    prepare_home(tmp_path / "home", db_url)
    open_window(tmp_path / "home")  # a certificate issued today may be renewed
    return center_env(tmp_path / "home", db_url)


def test_a_remote_desk_renews_onto_its_key_killed_then_resumed(home: dict[str, str], tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    (token_serial,) = tokens.serials()
    rid = approved_request(home)
    with serving(home) as base:
        at = desks(base, tmp_path, "entry", "acceptor", "reviewer", "distributor", "ops")
        dist = at["distributor"]
        dist.env |= {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN}
        key = ("--token-label", "USBKEY-0", "--as", "u-distributor")
        old = dist("issue", str(rid), *key, "--json", check=True).json()
        dist("distribute", str(rid), "--recipient", "王五", "--as", "u-distributor", check=True)
        before = objects(tokens, "USBKEY-0")

        plain = at["ops"]("renew", old["serial"], "--as", "u-ops")
        assert plain.code == 1 and f"--token-serial {token_serial}" in plain.err, plain
        deal = at["entry"](
            "request", "new", "--type", "renew", "--serial", old["serial"], "--as", "u-entry", "--json"
        ).json()["id"]
        at["acceptor"]("request", "accept", str(deal), "--opinion", "agree", "--as", "u-acceptor", check=True)
        at["reviewer"]("request", "review", str(deal), "--approve", "--as", "u-reviewer", check=True)

        plain_path = dist.env.get("PYTHONPATH")
        dist.env["PYTHONPATH"] = with_shim(
            shim(tmp_path / "shim", "    os.kill(os.getpid(), signal.SIGKILL)")
        )
        killed = dist("renew", old["serial"], *key)
        assert killed.code == -signal.SIGKILL, killed
        dist.env.pop("PYTHONPATH")
        dist.env |= {"PYTHONPATH": plain_path} if plain_path else {}
        [waiting] = dist("cert", "list", "--request", str(deal), "--json", check=True).json()
        assert (
            dist("cert", "show", waiting["serial"], "--json", check=True).json()["token"]["delivered"]
            is False
        )
        again = dist("renew", old["serial"], *key)
        assert again.code == 1 and "--resume" in again.err, again

        done = dist("renew", old["serial"], *key, "--resume", "--json", check=True).json()
        assert (done["serial"], done["renewed_from"], done["request_id"]) == (
            waiting["serial"],
            old["serial"],
            deal,
        )
        assert done["resumed"] is True and done["key_id"] == old["key_id"] and done["label"] == old["label"]
        state = at["entry"]("request", "show", str(deal), "--json", check=True).json()["state"]
        assert state == "issued"
        dist("distribute", str(deal), "--recipient", "张三", "--as", "u-distributor", check=True)

    after = objects(tokens, "USBKEY-0")
    assert key_pair(after) == key_pair(before)
    assert len(certificates(after)) == 1
    written = tmp_path / "on-token.der"
    subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", "USBKEY-0", "--read-object", "--type", "cert",
         "--id", old["key_id"], "--output-file", str(written)],
        check=True, capture_output=True, env=tokens.env(),
    )  # fmt: skip
    svc = center_service(home)
    try:
        with svc.ctx.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT serial, der, delivered FROM certificate WHERE request_id = :r"), {"r": deal}
            ).all()
        assert svc.requests.get(deal).state.value == "distributed"
        assert svc.certificates.get(old["serial"]).revocation_reason is not None
    finally:
        svc.ctx.engine.dispose()
    [(serial, der, delivered)] = rows  # issued exactly once
    assert serial == waiting["serial"] and bool(delivered) and bytes(der) == written.read_bytes()
