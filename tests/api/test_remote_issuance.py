"""Issuing through the API when things break: a desk issuing onto its own SoftHSM2 key (killed between the
center's issuance and the write, then --resume), and a server killed in the middle of an issuance, before
and after its commit, while the desk retries with the same Idempotency-Key. Each ends issued exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.enums import Action
from tests.cli.test_token_cli import listing, make_tokens, shim
from tests.support import with_shim
from tests.support.data import application, make_uscc
from tests.support.pki import csr_for, key
from tests.support.server import (
    PASSWORD,
    DeskProcess,
    center_env,
    center_service,
    free_port,
    prepare_home,
    serving,
    start_server,
    stop_server,
)
from tests.support.softhsm import USER_PIN

_numbers = iter(range(84000000, 85000000))


def approved_request(env: dict[str, str], usbkey: str = "SoftHSM2") -> int:
    svc = center_service(env)
    try:
        who = {
            r: svc.users.authenticate(f"u-{r}", PASSWORD) for r in ("entry", "acceptor", "head", "reviewer")
        }
        n = next(_numbers)
        req = svc.requests.create(
            application(credential_number=make_uscc("110101", str(n)), unit_name=f"某单位{n}"),
            actor=who["entry"],
        )
        assert req.id is not None
        svc.requests.accept(req.id, actor=who["acceptor"], agree=True, usbkey_model=usbkey)
        svc.requests.countersign(req.id, actor=who["head"])
        svc.requests.review(req.id, actor=who["reviewer"], decision=Action.APPROVE)
        return req.id
    finally:
        svc.ctx.engine.dispose()


def certificates_of(env: dict[str, str], rid: int) -> list[tuple[str, bool]]:
    svc = center_service(env)
    try:
        with svc.ctx.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT serial, delivered FROM certificate WHERE request_id = :r"), {"r": rid}
            ).all()
        return [(r[0], bool(r[1])) for r in rows]
    finally:
        svc.ctx.engine.dispose()


@pytest.fixture
def home(db_url: str, tmp_path: Path) -> dict[str, str]:
    prepare_home(tmp_path / "home", db_url)
    return center_env(tmp_path / "home", db_url)


def test_a_desk_issues_onto_its_own_usb_key_and_resumes_after_a_kill(
    home: dict[str, str], tmp_path: Path
) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid, killed_rid = approved_request(home), approved_request(home)
    with serving(home) as base:
        desk = DeskProcess(
            base, tmp_path / "desk", {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN}
        )
        desk("login", "--server", base, "--as", "u-distributor", check=True)
        done = desk(
            "issue", str(rid), "--token-label", "USBKEY-0", "--as", "u-distributor", "--json", check=True
        ).json()
        assert (
            done["request_id"] == rid
            and done["resumed"] is False
            and done["token_serial"] == tokens.serials()[0]
        )
        objects = listing(tokens, "USBKEY-0")
        assert objects.count(f"pkictl-{rid}-") >= 3  # private key, public key, certificate
        assert certificates_of(home, rid) == [(done["serial"], True)]
        shown = desk("cert", "show", done["serial"], "--json", check=True).json()
        assert shown["token"]["delivered"] is True and shown["token"]["key_id"] == done["key_id"]
        state = desk("request", "show", str(rid), "--json", check=True).json()["state"]
        assert state == "issued"

        # Killed after the center issued, before the certificate is on the key: recorded, not delivered.
        tokens2 = make_tokens(tmp_path / "hsm2", 1)
        desk.env["SOFTHSM2_CONF"] = str(tokens2.conf)
        kill = shim(tmp_path / "shim", "    os.kill(os.getpid(), signal.SIGKILL)")
        desk.env["PYTHONPATH"] = with_shim(kill)
        crashed = desk("issue", str(killed_rid), "--token-label", "USBKEY-0", "--as", "u-distributor")
        assert crashed.code == -9
        [(serial, delivered)] = certificates_of(home, killed_rid)
        assert not delivered
        again = desk("issue", str(killed_rid), "--token-label", "USBKEY-0", "--as", "u-distributor")
        assert again.code == 1 and "--resume" in again.err
        del desk.env["PYTHONPATH"]
        resumed = desk(
            "issue",
            str(killed_rid),
            "--token-label",
            "USBKEY-0",
            "--resume",
            "--as",
            "u-distributor",
            "--json",
            check=True,
        ).json()
        assert resumed["serial"] == serial and resumed["resumed"] is True
        assert certificates_of(home, killed_rid) == [(serial, True)]


def _server_shim(directory: Path, target: str, body: str) -> Path:
    """A sitecustomize for the server process wrapping ``target`` ("module:Class.method")."""
    module, _, attribute = target.partition(":")
    cls, _, method = attribute.partition(".")
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(
        f"import os, signal\nimport {module} as m\n_real = m.{cls}.{method}\n"
        f"def wrapped(*a, **k):\n{body}\nm.{cls}.{method} = wrapped\n",
        encoding="utf-8",
    )
    return directory


KILL_BEFORE_COMMIT = (
    "pki.services.issuance:IssuanceService.issue_locked",
    "    _real(*a, **k)\n    os.kill(os.getpid(), signal.SIGKILL)",
)
KILL_AFTER_ANSWER_KEPT = (
    "pki.services.idempotency:IdempotencyService.store",
    "    _real(*a, **k)\n    os.kill(os.getpid(), signal.SIGKILL)",
)


@pytest.mark.parametrize(
    "fault", [KILL_BEFORE_COMMIT, KILL_AFTER_ANSWER_KEPT], ids=["before-commit", "after-commit"]
)
def test_a_server_killed_mid_issuance_issues_once(
    home: dict[str, str], tmp_path: Path, fault: tuple[str, str]
) -> None:
    rid = approved_request(home)
    port = free_port()
    server, base = start_server(home, port=port, extra_path=_server_shim(tmp_path / "srv-shim", *fault))
    desk = DeskProcess(base, tmp_path / "desk")
    desk("login", "--server", base, "--as", "u-distributor", check=True)
    csr = tmp_path / "unit.csr"
    csr.write_bytes(csr_for(key("ec-p256", 44)))
    issuing = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pki.cli; pki.cli.main()",
            "issue",
            str(rid),
            "--csr",
            str(csr),
            "--as",
            "u-distributor",
            "--json",
        ],
        env=desk.env,
        cwd=desk.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.wait(timeout=60) == -9  # the fault struck mid-request
    finally:
        stop_server(server)
    time.sleep(0.2)
    server, _ = start_server(home, port=port)  # back, without the fault, while the desk retries
    try:
        out, err = issuing.communicate(timeout=120)
    finally:
        stop_server(server)
    assert issuing.returncode == 0, err
    issued = json.loads(out)
    assert certificates_of(home, rid) == [(issued["serial"], True)]


def test_an_answer_lost_after_the_center_recorded_keeps_the_key_pair_for_resume(
    home: dict[str, str], tmp_path: Path
) -> None:
    """The server dies after committing token.record and before keeping its answer: the desk's retry learns
    the work was done but not its answer; the desk asks, finds its key pair recorded, keeps it, and
    --resume finishes the issuance."""
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid = approved_request(home)
    port = free_port()
    lose_answer = _server_shim(
        tmp_path / "srv-shim",
        "pki.services.idempotency:IdempotencyService.store",
        "    if a[1].operation == 'token.record':\n        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _real(*a, **k)",
    )
    server, base = start_server(home, port=port, extra_path=lose_answer)
    desk = DeskProcess(
        base, tmp_path / "desk", {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN}
    )
    desk("login", "--server", base, "--as", "u-distributor", check=True)
    argv = ["issue", str(rid), "--token-label", "USBKEY-0", "--as", "u-distributor"]
    issuing = subprocess.Popen(
        [sys.executable, "-c", "import pki.cli; pki.cli.main()", *argv],
        env=desk.env,
        cwd=desk.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.wait(timeout=60) == -9
    finally:
        stop_server(server)
    server, _ = start_server(home, port=port)
    try:
        _, err = issuing.communicate(timeout=120)
        assert issuing.returncode == 1
        assert "carried out" in err and f"pkictl issue {rid} --resume" in err
        [(serial, delivered)] = certificates_of(home, rid)
        assert not delivered
        assert f"pkictl-{rid}-" in listing(tokens, "USBKEY-0")  # the key pair is still there
        resumed = desk(*argv, "--resume", "--json", check=True).json()
        assert resumed["serial"] == serial and resumed["resumed"] is True
    finally:
        stop_server(server)
    assert certificates_of(home, rid) == [(serial, True)]


def test_a_desk_cleans_a_key_pair_its_kill_left_before_the_center_recorded_it(
    home: dict[str, str], tmp_path: Path
) -> None:
    tokens = make_tokens(tmp_path / "hsm", 1)
    rid = approved_request(home)
    with serving(home) as base:
        desk = DeskProcess(
            base, tmp_path / "desk", {"SOFTHSM2_CONF": str(tokens.conf), "PKI_TOKEN_PIN": USER_PIN}
        )
        desk("login", "--server", base, "--as", "u-distributor", check=True)
        kill = _server_shim(
            tmp_path / "desk-shim",
            "pki.desk.remote:RemoteDesk.call",
            "    if a[1] == 'token.record':\n        os.kill(os.getpid(), signal.SIGKILL)\n    return _real(*a, **k)",
        )
        desk.env["PYTHONPATH"] = with_shim(kill)
        issue = ("issue", str(rid), "--token-label", "USBKEY-0", "--as", "u-distributor")
        assert desk(*issue).code == -9
        del desk.env["PYTHONPATH"]
        assert certificates_of(home, rid) == []
        refused = desk(*issue)
        assert refused.code == 1 and "token clean" in refused.err
        listed = desk("token", "clean", "--token-label", "USBKEY-0", "--json", check=True).json()
        [left] = listed["leftovers"]
        assert left["request_id"] == rid and "private key" in left["classes"]
        removed = desk(
            "token",
            "clean",
            "--token-label",
            "USBKEY-0",
            "--remove",
            "--as",
            "u-distributor",
            "--json",
            check=True,
        ).json()
        assert removed["leftovers"] == [left] and removed["removed"] is True
        assert f"pkictl-{rid}-" not in listing(tokens, "USBKEY-0")
        done = desk(*issue, "--json", check=True).json()
        assert certificates_of(home, rid) == [(done["serial"], True)]
    svc = center_service(home)
    try:
        actions = [r.action for r in svc.audit.recent(limit=20)]
    finally:
        svc.ctx.engine.dispose()
    assert "token.clean" in actions and "token.cleaned" in actions
