"""`pkictl audit verify | checkpoint` and the audit key's passphrase, through the CLI (SQLite and
PostgreSQL): exit codes, the one-line refusal, --json, and what init and the demo make."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text

import pki.cli
from pki import audit
from pki.db import UTCDateTime, make_engine
from tests.cli.runner import Cli, Result
from tests.support.data import application, make_uscc

_enter_count = iter(range(1_000_000))


def _enter(cli: Cli, tmp_path: Path) -> None:
    n = next(_enter_count)
    path = tmp_path / f"application-{n}.json"
    path.write_text(
        json.dumps(application(credential_number=make_uscc("110101", str(50000000 + n))), ensure_ascii=False),
        encoding="utf-8",
    )
    cli.ok("request", "new", "--file", str(path), "--as", "clerk")


def _refused(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("pkictl: error: "), result.err
    for fragment in fragments:
        assert fragment in result.err_lines[0], result.err


@contextmanager
def _audit_passphrase(monkeypatch: pytest.MonkeyPatch, value: str | None) -> Iterator[None]:
    """PKI_AUDIT_PASSPHRASE set to ``value`` (unset for None) between the runner, which sets the right one
    on every call, and pki.cli.main."""
    real = pki.cli.main

    def main(argv: list[str] | None = None) -> None:
        if value is None:
            monkeypatch.delenv("PKI_AUDIT_PASSPHRASE", raising=False)
        else:
            monkeypatch.setenv("PKI_AUDIT_PASSPHRASE", value)
        real(argv)

    with monkeypatch.context() as m:
        m.setattr(pki.cli, "main", main)
        yield


def _forge_append(db_url: str) -> int:
    """What someone with the database's password can do: append a record with a proper hash and link and
    move the head onto it. Returns its number."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            seq, prev = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
            at = conn.execute(
                text("SELECT at FROM audit_record WHERE seq = :s").columns(at=UTCDateTime()), {"s": seq}
            ).scalar_one()
            row = {
                "seq": seq + 1,
                "at": at,
                "actor": "admin",
                "action": "user.add",
                "subject_type": "user",
                "subject_id": "mallory",
                "details": '{"roles":["admin"]}',
                "prev_hash": prev,
            }
            row["hash"] = audit.record_hash(**row)
            conn.execute(
                text(
                    "INSERT INTO audit_record (seq, at, actor, action, subject_type, subject_id, details,"
                    " prev_hash, hash, mac) VALUES (:seq, :at, :actor, :action, :subject_type, :subject_id,"
                    " :details, :prev_hash, :hash, :mac)"
                ).bindparams(bindparam("at", type_=UTCDateTime())),
                {**row, "mac": "ab" * 32},
            )
            conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": seq + 1, "h": row["hash"]})
    finally:
        engine.dispose()
    return int(seq) + 1


def test_init_makes_the_audit_key_once(home: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    key = home.home / "audit" / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    with _audit_passphrase(monkeypatch, None):
        again = home.ok("init")  # nothing to make: the passphrase is not asked for
    assert key.read_bytes() == before
    assert (
        f"audit key: {key}; checkpoints (ship them elsewhere): {key.parent / 'checkpoints.jsonl'}"
        in again.out
    )
    checkpoints = (home.home / "audit" / "checkpoints.jsonl").read_text().splitlines()
    assert json.loads(checkpoints[0])["reason"] == "keyed"
    first = home.json("audit", "show", "--limit", "1000")[0]
    assert (first["seq"], first["action"], first["details"]["keyed_from"]) == (1, "audit.keyed", 1)


def test_verify_ok(staffed: Cli, tmp_path: Path) -> None:
    _enter(staffed, tmp_path)
    result = staffed.ok("audit", "verify")
    assert result.out.splitlines()[0].startswith("audit chain OK: ")
    assert result.out.splitlines()[1].startswith("newest checkpoint: record ")
    report = staffed.json("audit", "verify")
    assert report["ok"] is True and report["problems"] == [] and report["untrusted_from"] is None
    assert report["keyed_from"] == 1 and report["checkpoints"] >= 1


def test_verify_names_a_forged_append(staffed: Cli, tmp_path: Path) -> None:
    _enter(staffed, tmp_path)
    forged = _forge_append(staffed.db_url)

    result = staffed("audit", "verify")

    _refused(result, "audit chain broken: 1 problem(s) found", f"untrustworthy from record {forged}")
    assert result.out == f"record {forged}: MAC does not match (forged, or edited and re-hashed)\n"
    as_json = staffed("audit", "verify", "--json")
    assert as_json.code == 1
    report = as_json.json()
    assert (report["ok"], report["untrusted_from"], report["head_seq"]) == (False, forged, forged)


def test_verify_names_a_cut_tail_after_a_checkpoint(staffed: Cli, tmp_path: Path) -> None:
    _enter(staffed, tmp_path)
    written = staffed.ok("audit", "checkpoint").out
    seq = int(written.split("record ")[1])
    assert (
        json.loads((staffed.home / "audit" / "checkpoints.jsonl").read_text().splitlines()[-1])["seq"] == seq
    )
    engine = make_engine(staffed.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_record WHERE seq >= :s"), {"s": seq - 1})
            prev = conn.execute(
                text("SELECT hash FROM audit_record WHERE seq = :s"), {"s": seq - 2}
            ).scalar_one()
            conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": seq - 2, "h": prev})
    finally:
        engine.dispose()

    _refused(staffed("audit", "verify"), f"untrustworthy from record {seq - 1}")
    report = staffed("audit", "verify", "--json").json()
    assert report["untrusted_from"] == seq - 1 and report["last_checkpoint"] == seq


def test_the_audit_passphrase(staffed: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write needs the audit key; reads do not. A wrong passphrase is a clear refusal (exit 1), none at
    all (and no terminal to prompt on) a usage error naming the variable (exit 2); nothing is written."""
    app = tmp_path / "application.json"
    app.write_text(json.dumps(application(), ensure_ascii=False), encoding="utf-8")
    with _audit_passphrase(monkeypatch, "not-the-audit-passphrase"):
        _refused(
            staffed("user", "add", "li", "--role", "entry", "--as", "admin"), "audit key passphrase is wrong"
        )
        _refused(staffed("audit", "verify"), "audit key passphrase is wrong")
    with _audit_passphrase(monkeypatch, None):
        for result in (
            staffed("request", "new", "--file", str(app), "--as", "clerk"),
            staffed("audit", "checkpoint"),
        ):
            assert result.code == 2 and "PKI_AUDIT_PASSPHRASE" in result.err, result
        assert staffed("request", "list", "--json").json() == []
    assert "li" not in {u["username"] for u in staffed.json("user", "list")}
    staffed.ok("audit", "verify")


def test_the_demo_keeps_its_audit_passphrase_beside_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, engines: object
) -> None:
    from pki import demo

    cli = Cli(monkeypatch, capsys, tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'pki.db'}")
    cli.ok("demo")
    kept = cli.home / demo.AUDIT_PASSPHRASE_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    with _audit_passphrase(monkeypatch, kept.read_text().strip()):
        report = cli.json("audit", "verify")
    assert report["ok"] is True and report["records"] > 20
    # The demo published its CRLs last: that checkpoint is the newest.
    assert (
        json.loads((cli.home / "audit" / "checkpoints.jsonl").read_text().splitlines()[-1])["reason"] == "crl"
    )


def test_the_checkpoint_file_can_live_elsewhere(
    staffed: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PKI_AUDIT_CHECKPOINTS points the checkpoints at a file an operator ships (a mount, a shipper's spool)."""
    elsewhere = tmp_path / "spool" / "pkictl-checkpoints.jsonl"
    monkeypatch.setenv("PKI_AUDIT_CHECKPOINTS", str(elsewhere))
    seq = int(staffed.ok("audit", "checkpoint").out.split("record ")[1])
    assert [json.loads(line)["seq"] for line in elsewhere.read_text().splitlines()] == [seq]
    report = staffed.json("audit", "verify")
    assert (report["ok"], report["last_checkpoint"], report["checkpoints"]) == (True, seq, 1)
