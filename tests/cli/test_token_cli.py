"""`pkictl issue` onto USB keys, `token list|mark`, `distribute`, end to end.

pkictl runs as a real subprocess over a token directory of the test's own (SoftHSM2 reads its configuration
once per process), so that a process can really be killed (SIGKILL) between issuance and writing the
certificate, and Ctrl-C can really arrive during --all-approved. The faults come from a sitecustomize shim on
PYTHONPATH that wraps the token-write method; production code has no fault hook.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.runner import AUDIT_PASSPHRASE, CA_PASSPHRASE, PASSWORD, Cli
from tests.cli.test_ca_cli import enter
from tests.support import with_shim
from tests.support.server import Run
from tests.support.softhsm import MODULE, SO_PIN, USER_PIN

SOFTHSM = "SoftHSM2"


@dataclass(frozen=True)
class Tokens:
    conf: Path
    labels: list[str]

    def serials(self) -> list[str]:
        out = subprocess.run(
            ["softhsm2-util", "--show-slots"], capture_output=True, text=True, check=True, env=self.env()
        ).stdout
        serials = []
        for block in out.split("Slot ")[1:]:
            label = next((ln.split(":", 1)[1].strip() for ln in block.splitlines() if "Label:" in ln), "")
            serial = next(
                (ln.split(":", 1)[1].strip() for ln in block.splitlines() if "Serial number:" in ln), ""
            )
            if label in self.labels:
                serials.append((self.labels.index(label), serial))
        return [s for _, s in sorted(serials)]

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "PATH": "/usr/bin:/bin"}


def make_tokens(directory: Path, n: int, *, mechanisms: str = "") -> Tokens:
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        + (f"slots.mechanisms = {mechanisms}\n" if mechanisms else ""),
        encoding="ascii",
    )
    tokens = Tokens(conf, [f"USBKEY-{i}" for i in range(n)])
    for label in tokens.labels:
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ],
            check=True,
            capture_output=True,
            env=tokens.env(),
        )
    return tokens


def pkictl(
    cli: Cli,
    tokens: Tokens,
    *argv: str,
    shim: Path | None = None,
    pin: str = USER_PIN,
    env: dict[str, str] | None = None,
) -> Run:
    env = {
        **(env or {}),
        **tokens.env(),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PKI_HOME": str(cli.home),
        "PKI_DATABASE_URL": cli.db_url,
        "PKI_PASSWORD": PASSWORD,
        "PKI_CA_PASSPHRASE": CA_PASSPHRASE,
        "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE,
        "PKI_TOKEN_PIN": pin,
    }
    if shim is not None:
        env["PYTHONPATH"] = with_shim(shim)
    done = subprocess.run(
        [sys.executable, "-c", "import pki.cli; pki.cli.main()", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def shim(directory: Path, body: str) -> Path:
    """A sitecustomize that replaces UsbKey.write_certificate in the pkictl subprocess."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        "import os, signal\nimport tokens.usbkey as u\n_real = u.UsbKey.write_certificate\n"
        "def write(self, der, key_id, label):\n" + body + "\nu.UsbKey.write_certificate = write\n",
        encoding="utf-8",
    )
    return directory


def listing(tokens: Tokens, label: str, pin: str = USER_PIN) -> str:
    return subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", label, "--login", "--pin", pin, "-O"],
        capture_output=True,
        text=True,
        check=True,
        env=tokens.env(),
    ).stdout


@pytest.fixture
def desk(staffed: Cli) -> Cli:
    """The staffed home plus 'dist' (distributor) and 'ops1' (ops)."""
    staffed.add_user("dist", "distributor")
    staffed.add_user("ops1", "ops")
    return staffed


def approved(cli: Cli, tmp_path: Path, *, usbkey: str = SOFTHSM) -> int:
    rid = enter(cli, tmp_path)
    cli.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", usbkey, "--as", "acceptor")
    cli.ok("request", "countersign", str(rid), "--as", "head")
    cli.ok("request", "review", str(rid), "--approve", "--as", "reviewer")
    return rid


def state(cli: Cli, rid: int) -> str:
    return str(cli.json("request", "show", str(rid))["state"])


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_killed_between_issuance_and_delivery_then_resumed(desk: Cli, tmp_path: Path, when: str) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid = approved(desk, tmp_path)
    body = (
        "    os.kill(os.getpid(), signal.SIGKILL)"
        if when == "before-write"
        else "    _real(self, der, key_id, label)\n    os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = pkictl(
        desk,
        tokens,
        "issue",
        str(rid),
        "--as",
        "dist",
        "--token-label",
        "USBKEY-0",
        shim=shim(tmp_path / "shim", body),
    )
    assert killed.code == -signal.SIGKILL, killed
    # Issued and recorded, not delivered: the request waits; a plain issue is refused.
    assert state(desk, rid) == "approved"
    [cert] = desk.json("cert", "list", "--request", str(rid))
    placed = desk.json("cert", "show", cert["serial"])["token"]
    assert placed["token_serial"] in tokens.serials() and placed["token_label"] == "USBKEY-0"
    assert (placed["delivered"], placed["model"], placed["key_type"]) == (False, SOFTHSM, "ec-p256")
    assert "USBKEY-0 (serial " in desk.ok("cert", "show", cert["serial"]).out.split("token: ")[1]
    assert "not yet written" in desk.ok("cert", "show", cert["serial"]).out
    objects = listing(tokens, "USBKEY-0")
    assert "Private Key Object" in objects and ("Certificate Object" in objects) == (when == "after-write")
    again = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0")
    assert again.code == 1 and "--resume" in again.err, again
    resumed = pkictl(
        desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0", "--resume", "--json"
    )
    assert resumed.code == 0, resumed
    assert resumed.json()["serial"] == cert["serial"] and resumed.json()["resumed"] is True
    assert state(desk, rid) == "issued"
    assert desk.json("cert", "show", cert["serial"])["token"]["delivered"] is True
    assert "not yet written" not in desk.ok("cert", "show", cert["serial"]).out
    out = tmp_path / "on-token.der"
    subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", "USBKEY-0", "--read-object", "--type", "cert",
         "--id", resumed.json()["key_id"], "--output-file", str(out)],
        check=True, capture_output=True, env=tokens.env(),
    )  # fmt: skip
    exported = tmp_path / "db.der"
    desk.ok("cert", "export", cert["serial"], "--format", "der", "--out", str(exported))
    assert out.read_bytes() == exported.read_bytes()
    assert listing(tokens, "USBKEY-0").count("Certificate Object") == 1


def test_a_key_left_by_a_kill_before_recording_is_listed_then_removed(desk: Cli, tmp_path: Path) -> None:
    """Killed after the key pair is on the token and before the certificate is recorded: nothing was issued,
    the next issuance refuses to overwrite the key; `token clean` lists it and, with --remove, removes it
    (audited, for the roles of token_clean only); then the request issues normally."""
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid = approved(desk, tmp_path)
    kill = tmp_path / "shim"
    kill.mkdir()
    (kill / "sitecustomize.py").write_text(
        "import os, signal\nimport tokens.usbkey as u\n_real = u.UsbKey.generate\n"
        "def generate(self, key_type, label):\n    _real(self, key_type, label)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\nu.UsbKey.generate = generate\n",
        encoding="utf-8",
    )
    killed = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0", shim=kill)
    assert killed.code == -signal.SIGKILL, killed
    assert desk.json("cert", "list", "--request", str(rid)) == [] and state(desk, rid) == "approved"
    refused = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0")
    assert refused.code == 1 and "nothing was overwritten" in refused.err, refused

    listed = pkictl(desk, tokens, "token", "clean", "--token-label", "USBKEY-0", "--json")
    assert listed.code == 0, listed
    [left] = listed.json()["leftovers"]
    assert left["request_id"] == rid and left["classes"] == ["private key", "public key"]
    assert "Private Key Object" in listing(tokens, "USBKEY-0")  # listing removes nothing
    entry = pkictl(desk, tokens, "token", "clean", "--token-label", "USBKEY-0", "--remove", "--as", "entry")
    assert entry.code != 0 and "Private Key Object" in listing(tokens, "USBKEY-0"), entry
    removed = pkictl(desk, tokens, "token", "clean", "--token-label", "USBKEY-0", "--remove", "--as", "dist")
    assert removed.code == 0 and f"removed: pkictl-{rid}-" in removed.out, removed
    assert "Private Key Object" not in listing(tokens, "USBKEY-0")
    [audited] = [r for r in desk.json("audit", "show") if r["action"] == "token.clean"]
    assert audited["actor"] == "dist" and left["key_id"] in json.dumps(audited["details"])

    issued = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0")
    assert issued.code == 0 and state(desk, rid) == "issued", issued
    after = pkictl(desk, tokens, "token", "clean", "--token-label", "USBKEY-0")
    assert "nothing left by an interrupted issuance" in after.out, after  # a delivered key is never listed


def test_unsupported_mechanism_wrong_pin_absent_token(desk: Cli, tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1, mechanisms="CKM_ECDSA,CKM_EC_KEY_PAIR_GEN,CKM_SHA256")
    rid = approved(desk, tmp_path)
    base = ("issue", str(rid), "--as", "dist", "--token-label", "USBKEY-0")
    no_rsa = pkictl(desk, tokens, *base, "--key-type", "rsa-2048")
    assert no_rsa.code == 1 and "does not support CKM_RSA_PKCS_KEY_PAIR_GEN" in no_rsa.err, no_rsa
    wrong = pkictl(desk, tokens, *base, pin="999999")
    assert wrong.code == 1 and "wrong PIN" in wrong.err and "tries left" in wrong.err, wrong
    assert "999999" not in wrong.err + wrong.out
    absent = pkictl(desk, tokens, "issue", str(rid), "--as", "dist", "--token-label", "NOT-HERE")
    assert absent.code == 1 and "no token with label 'NOT-HERE' is present" in absent.err, absent
    assert "(searched PKCS#11 module /usr/lib/softhsm/libsofthsm2.so)" in absent.err, absent  # whose keys
    assert "Private Key Object" not in listing(tokens, "USBKEY-0")
    assert state(desk, rid) == "approved" and desk.json("cert", "list") == []
    # The model's key types come from tokens.toml: ePass3003 makes RSA only.
    rid2 = approved(desk, tmp_path, usbkey="飞天诚信 ePass3003")
    refused = pkictl(
        desk, tokens, "issue", str(rid2), "--as", "dist", "--token-label", "USBKEY-0", "--module", MODULE,
        "--key-type", "ec-p256",
    )  # fmt: skip
    assert refused.code == 1 and "supports rsa-2048" in refused.err, refused
    # A model driven by another module (ePass2003: OpenSC) does not see the SoftHSM2 key: the error names
    # the module it searched (or that it is not installed).
    rid3 = approved(desk, tmp_path, usbkey="飞天诚信 ePass2003")
    elsewhere = pkictl(desk, tokens, "issue", str(rid3), "--as", "dist", "--token-label", "USBKEY-0")
    assert elsewhere.code == 1 and "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so" in elsewhere.err, elsewhere


def test_all_approved_over_two_tokens_then_list_mark_distribute(desk: Cli, tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 2)
    rids = [approved(desk, tmp_path) for _ in range(3)]
    run = pkictl(desk, tokens, "issue", "--all-approved", "--as", "dist", "--json")
    assert run.code == 0, run
    summary = run.json()
    assert (summary["issued"], summary["failed"], summary["waiting"], summary["tokens_blank"]) == (2, 0, 1, 2)
    assert [r["request"] for r in summary["results"]] == rids[:2]
    assert [state(desk, r) for r in rids] == ["issued", "issued", "approved"]
    # A second pass finds no blank token: nothing issued, the third request still waits.
    second = pkictl(desk, tokens, "issue", "--all-approved", "--as", "dist", "--json")
    assert second.code == 0 and second.json()["issued"] == 0 and second.json()["tokens_blank"] == 0

    listed = {t["serial"]: t for t in pkictl(desk, tokens, "token", "list", "--json").json()}
    serials = tokens.serials()
    assert {s: (listed[s]["state"], listed[s]["present"], listed[s]["certificates"]) for s in serials} == {
        s: ("issued", True, 1) for s in serials
    }
    assert (
        pkictl(desk, tokens, "distribute", str(rids[0]), "--as", "reviewer", "--recipient", "王五").code == 1
    )
    handed = desk.ok("distribute", str(rids[0]), "--as", "dist", "--recipient", "王五")
    assert "handed over to 王五" in handed.out and state(desk, rids[0]) == "distributed"
    lost = desk("token", "mark", serials[0], "--lost", "--as", "dist", "--json")
    assert lost.code == 0, lost
    [revoked] = lost.json()["revoked"]
    shown = desk.json("cert", "show", revoked)
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "keyCompromise"
    assert desk("token", "mark", serials[0], "--returned", "--as", "clerk").code == 1  # no role


def test_ctrl_c_stops_between_requests(desk: Cli, tmp_path: Path) -> None:
    tokens = make_tokens(tmp_path / "hsm", 2)
    rids = [approved(desk, tmp_path) for _ in range(2)]
    body = "    _real(self, der, key_id, label)\n    os.kill(os.getpid(), signal.SIGINT)"
    run = pkictl(
        desk, tokens, "issue", "--all-approved", "--as", "dist", "--json", shim=shim(tmp_path / "shim", body)
    )
    assert run.code == 130, run
    summary = run.json()
    assert summary["interrupted"] and summary["issued"] == 1 and summary["waiting"] == 1
    # The request in hand when Ctrl-C came was finished whole; the next was never started.
    assert [state(desk, r) for r in rids] == ["issued", "approved"]
    assert desk.json("cert", "list", "--request", str(rids[1])) == []


def test_usage_errors(home: Cli) -> None:
    for argv in (
        ("issue", "--as", "admin"),
        ("issue", "1", "--as", "admin"),
        ("issue", "1", "--as", "admin", "--token-label", "A", "--token-serial", "B"),
        ("issue", "1", "--all-approved", "--as", "admin"),
        ("issue", "1", "--csr", __file__, "--token-label", "A", "--as", "admin"),
        ("token", "mark", "ABC", "--as", "admin"),
    ):
        result = home(*argv)
        assert result.code == 2, (argv, result)


def test_token_list_without_tokens_and_mark_of_an_unknown_token(desk: Cli) -> None:
    listed = desk("token", "list", "--module", "/nonexistent/pkcs11.so")
    assert listed.code == 0 and "no tokens recorded or present" in listed.out
    assert "PKCS#11 module /nonexistent/pkcs11.so not found" in listed.err
    refused = desk("token", "mark", "NOPE", "--lost", "--as", "ops1")
    assert refused.code == 1 and "token NOPE is not recorded" in refused.err
