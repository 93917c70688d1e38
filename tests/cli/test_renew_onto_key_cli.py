"""`pkictl renew SERIAL (--token-label L | --token-serial S)` end to end on SoftHSM2, SQLite and PostgreSQL:
pkictl runs as a real subprocess over a token directory of the test's own, so that it can be killed (SIGKILL)
between the center's issuance of the renewal and its write onto the key, then resumed with --resume.

The home's policies/ca.toml opens the renewal window 400 days before the end, so that a certificate issued
today can be renewed (the service tests move a clock instead)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from policies import PACKAGED
from tests.cli.runner import Cli
from tests.cli.test_token_cli import SOFTHSM, Tokens, approved, make_tokens, pkictl, shim
from tests.support.softhsm import MODULE

WINDOW = "window_days = 400"


def open_window(home: Path) -> None:
    """HOME/policies/ca.toml: the packaged one with a renewal window of 400 days."""
    packaged = (PACKAGED / "ca.toml").read_text(encoding="utf-8")
    assert "window_days = 90" in packaged
    (home / "policies").mkdir(exist_ok=True)
    (home / "policies" / "ca.toml").write_text(packaged.replace("window_days = 90", WINDOW), encoding="utf-8")


@pytest.fixture
def desk(staffed: Cli) -> Cli:
    """The staffed home plus 'dist' (distributor) and 'ops1' (ops), renewals open."""
    staffed.add_user("dist", "distributor")
    staffed.add_user("ops1", "ops")
    open_window(staffed.home)
    return staffed


def objects(tokens: Tokens, label: str) -> list[str]:
    """pkcs11-tool --list-objects, one block per object."""
    out = subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", label, "--login", "--pin", "123456", "-O"],
        capture_output=True,
        text=True,
        check=True,
        env=tokens.env(),
    ).stdout
    blocks: list[str] = []
    for line in out.splitlines():
        if line and not line[0].isspace():
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def key_pair(blocks: list[str]) -> list[str]:
    return sorted(b for b in blocks if b.startswith(("Private Key Object", "Public Key Object")))


def certificates(blocks: list[str]) -> list[str]:
    return [b for b in blocks if b.startswith("Certificate Object")]


def on_token(tokens: Tokens, label: str, key_id: str, out: Path) -> bytes:
    subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", label, "--read-object", "--type", "cert",
         "--id", key_id, "--output-file", str(out)],
        check=True, capture_output=True, env=tokens.env(),
    )  # fmt: skip
    return out.read_bytes()


def issued_onto(desk: Cli, tokens: Tokens, tmp_path: Path, label: str) -> tuple[int, str]:
    """A request issued onto the key ``label`` and handed over: its id and the certificate's serial."""
    rid = approved(desk, tmp_path, usbkey=SOFTHSM)
    done = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", label, "--json")
    assert done.code == 0, done
    desk.ok("distribute", str(rid), "--recipient", "王五", "--as", "dist")
    return rid, str(done.json()["serial"])


def renew_deal(desk: Cli, serial: str) -> int:
    rid = int(desk.json("request", "new", "--type", "renew", "--serial", serial, "--as", "clerk")["id"])
    desk.ok("request", "accept", str(rid), "--opinion", "agree", "--as", "acceptor")
    desk.ok("request", "review", str(rid), "--approve", "--as", "reviewer")
    return rid


def state(desk: Cli, rid: int) -> str:
    return str(desk.json("request", "show", str(rid))["state"])


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_a_renew_deal_onto_the_key_killed_then_resumed(desk: Cli, tmp_path: Path, when: str) -> None:
    tokens = make_tokens(tmp_path / "hsm", 2)
    serial0, serial1 = tokens.serials()
    _, old = issued_onto(desk, tokens, tmp_path, "USBKEY-0")
    before = objects(tokens, "USBKEY-0")
    placed = desk.json("cert", "show", old)["token"]

    plain = pkictl(desk, tokens, "renew", old, "--as", "ops1")  # the unit would leave with the old one
    assert plain.code == 1 and f"--token-serial {serial0}" in plain.err, plain
    deal = renew_deal(desk, old)
    other = objects(tokens, "USBKEY-1")
    wrong = pkictl(desk, tokens, "renew", old, "--token-label", "USBKEY-1", "--as", "dist")
    assert wrong.code == 1 and f"is on token {serial0}, not on {serial1}" in wrong.err, wrong
    assert objects(tokens, "USBKEY-1") == other and objects(tokens, "USBKEY-0") == before
    assert desk.json("cert", "list", "--request", str(deal)) == []

    body = (
        "    os.kill(os.getpid(), signal.SIGKILL)"
        if when == "before-write"
        else "    _real(self, der, key_id, label)\n    os.kill(os.getpid(), signal.SIGKILL)"
    )
    renew = ("renew", old, "--token-label", "USBKEY-0", "--as", "dist")
    killed = pkictl(desk, tokens, *renew, shim=shim(tmp_path / "shim", body))
    assert killed.code == -signal.SIGKILL, killed
    [waiting] = desk.json("cert", "list", "--request", str(deal))  # issued once, not on the key yet
    assert desk.json("cert", "show", waiting["serial"])["token"]["delivered"] is False
    assert state(desk, deal) == "approved"
    assert len(certificates(objects(tokens, "USBKEY-0"))) == (2 if when == "after-write" else 1)
    again = pkictl(desk, tokens, *renew)
    assert again.code == 1 and f"pkictl renew {old} --token-serial {serial0} --resume" in again.err, again
    issue = pkictl(  # the deal's request records no USBKEY model: the module is given
        desk,
        tokens,
        "issue",
        str(deal),
        "--module",
        MODULE,
        "--token-label",
        "USBKEY-0",
        "--resume",
        "--as",
        "dist",
    )
    assert issue.code == 1 and f"pkictl renew {old}" in issue.err, issue

    resumed = pkictl(
        desk, tokens, "renew", old, "--token-serial", serial0, "--resume", "--as", "dist", "--json"
    )
    assert resumed.code == 0, resumed
    done = resumed.json()
    assert (done["serial"], done["renewed_from"], done["request_id"]) == (waiting["serial"], old, deal)
    assert done["resumed"] is True and done["key_id"] == placed["key_id"]
    assert [c["serial"] for c in desk.json("cert", "list", "--request", str(deal))] == [waiting["serial"]]
    after = objects(tokens, "USBKEY-0")
    assert key_pair(after) == key_pair(before)  # the key pair unchanged
    [cert_object] = certificates(after)  # the old certificate object replaced by the new one
    assert placed["key_id"] in cert_object and placed["label"] in cert_object
    exported = tmp_path / "db.der"
    desk.ok("cert", "export", waiting["serial"], "--format", "der", "--out", str(exported))
    assert on_token(tokens, "USBKEY-0", placed["key_id"], tmp_path / "on.der") == exported.read_bytes()
    assert state(desk, deal) == "issued"
    desk.ok("distribute", str(deal), "--recipient", "张三", "--as", "dist")
    assert state(desk, deal) == "distributed"
    shown = desk.json("cert", "show", old)
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "superseded"


def test_ops_renew_directly_onto_the_key(desk: Cli, tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    (serial0,) = tokens.serials()
    rid, old = issued_onto(desk, tokens, tmp_path, "USBKEY-0")
    for argv, words in (
        (("--token-label", "USBKEY-0", "--token-serial", serial0), "not both"),
        (("--resume",), "go with --token-label or --token-serial"),
        (("--module", MODULE), "go with --token-label or --token-serial"),
        (("--token-label", "USBKEY-0", "--rekey", "--csr", __file__), "rekey deal"),
        (("--token-label", "USBKEY-0", "--resume", "--months", "24"), "--resume takes none"),
    ):
        refused = desk("renew", old, *argv, "--as", "ops1")
        assert refused.code == 2 and words in refused.err, (argv, refused.err)
    done = pkictl(desk, tokens, "renew", old, "--token-serial", serial0, "--months", "24", "--as", "ops1")
    assert done.code == 0, done
    renewed = [c for c in desk.json("cert", "list", "--request", str(rid)) if c["serial"] != old]
    [new] = renewed
    assert done.out.startswith(
        f"certificate {new['serial']}, the renewal of {old}, issued and written onto token {serial0} beside "
        "the same key pair as "
    )
    assert f"Hand it over with 'pkictl distribute {rid}'" in done.out
    assert len(certificates(objects(tokens, "USBKEY-0"))) == 1
    assert state(desk, rid) == "distributed"  # a direct renewal moves no request
    handed = desk.ok("distribute", str(rid), "--recipient", "赵六", "--as", "dist")
    assert new["serial"] in handed.out
    twice = pkictl(desk, tokens, "renew", old, "--token-serial", serial0, "--as", "ops1")
    assert twice.code == 1 and "already renewed" in twice.err, twice
