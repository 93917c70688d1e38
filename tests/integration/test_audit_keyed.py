"""The keyed audit trail against someone who can write the database but does not hold the audit key.

The attacker here knows the hash algorithm (pki.audit.record_hash) and re-hashes whatever they touch, as the
issue's tamper tests did; what they cannot make is a record MAC or a checkpoint. Each variant must be
reported with the first record that can no longer be trusted.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

import pki.audit_key
from pki import audit
from pki.audit_key import AuditKey, PassphraseProtection
from pki.audit_seal import AuditSeal
from pki.bootstrap import alembic_config, migrate
from pki.ca.keystore import FileKeyStore
from pki.clock import FixedClock
from pki.db import UTCDateTime, make_engine
from pki.errors import ConflictError, KeyAccessError
from pki.services import Actor, Service
from policies.audit import AuditPolicy
from tests.conftest import CA_PASSPHRASE, T0
from tests.support.data import application, make_uscc

# -- the attacker's tools: plain SQL and the public hash function -----------------------------------------


def _exec(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _records(engine: Engine) -> list[dict[str, Any]]:
    query = text("SELECT * FROM audit_record ORDER BY seq").columns(at=UTCDateTime())
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]


_INSERT = text(
    "INSERT INTO audit_record (seq, at, actor, action, subject_type, subject_id, details, prev_hash, hash{mac})"
    " VALUES (:seq, :at, :actor, :action, :subject_type, :subject_id, :details, :prev_hash, :hash{mac_value})"
)


def _insert(conn: Any, row: dict[str, Any]) -> None:
    """Through the column's own type, as pkictl writes it (SQLite keeps timestamps as text)."""
    keyed = "mac" in row
    sql = _INSERT.text.format(mac=", mac" if keyed else "", mac_value=", :mac" if keyed else "")
    conn.execute(text(sql).bindparams(bindparam("at", type_=UTCDateTime())), row)


def _hash(row: dict[str, Any]) -> str:
    fields = ("seq", "at", "actor", "action", "subject_type", "subject_id", "details", "prev_hash")
    return audit.record_hash(**{k: row[k] for k in fields})


def _rehash_from(engine: Engine, first: int) -> None:
    """Recompute every hash and link from record ``first`` on and move the head: a chain that is sound as far
    as hashes go. The MACs are left as they were (the attacker cannot compute new ones)."""
    rows = _records(engine)
    prev = audit.GENESIS_HASH
    with engine.begin() as conn:
        for row in rows:
            if row["seq"] >= first:
                row["prev_hash"] = prev
                row["hash"] = _hash(row)
                conn.execute(
                    text("UPDATE audit_record SET prev_hash = :p, hash = :h WHERE seq = :s"),
                    {"p": row["prev_hash"], "h": row["hash"], "s": row["seq"]},
                )
            prev = row["hash"]
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": rows[-1]["seq"], "h": prev})


def _renumber(engine: Engine, from_seq: int, by: int) -> None:
    """Shift records from ``from_seq`` on by ``by`` (through negatives: the key is checked row by row)."""
    _exec(engine, "UPDATE audit_record SET seq = -seq WHERE seq >= :f", f=from_seq)
    _exec(engine, "UPDATE audit_record SET seq = -seq + :b WHERE seq < 0", b=by)


def _forged_row(engine: Engine, seq: int, **fields: Any) -> None:
    row = {
        "seq": seq,
        "at": T0,
        "actor": "mallory",
        "action": "user.add",
        "subject_type": "user",
        "subject_id": "mallory",
        "details": json.dumps({"roles": ["admin"]}),
        "prev_hash": audit.GENESIS_HASH,
        "hash": "0" * 64,
        "mac": secrets.token_hex(32),  # the best an attacker can do without the key
        **fields,
    }
    with engine.begin() as conn:
        _insert(conn, row)


_units = itertools.count(40000000)


def _populate(service: Service, people: dict[str, Actor], n: int = 3) -> int:
    """2n records (enter and accept n requests); returns the head's number."""
    for _ in range(n):
        req = service.requests.create(
            application(credential_number=make_uscc("110101", str(next(_units)))), actor=people["clerk"]
        )
        assert req.id is not None
        service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    return 2 * n


def _broken(service: Service, first_untrusted: int, phrase: str) -> audit.VerifyResult:
    result = service.audit.verify()
    assert not result.ok
    assert result.untrusted_from == first_untrusted, result.problems
    assert any(phrase in p for p in result.problems), result.problems
    return result


# -- the variants -----------------------------------------------------------------------------------------


def test_a_sound_keyed_chain_verifies(service: Service, people: dict[str, Actor]) -> None:
    n = _populate(service, people)
    result = service.audit.verify()
    assert result.ok, result.problems
    assert (result.records, result.keyed_from, result.untrusted_from) == (n, 1, None)
    assert all(len(r["mac"]) == 64 for r in _records(service.ctx.engine))
    # The first write of a process with no checkpoint file yet writes one.
    assert result.checkpoints >= 1 and result.last_checkpoint is not None


def test_edited_record(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people)
    _exec(service.ctx.engine, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 3")
    _broken(service, 3, "record 3: content does not match its hash")


def test_edited_and_rehashed(service: Service, people: dict[str, Actor]) -> None:
    """What the plain chain could not see: the edit and every hash after it recomputed, the head moved."""
    _populate(service, people)
    _exec(service.ctx.engine, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 3")
    _rehash_from(service.ctx.engine, 3)
    result = _broken(service, 3, "record 3: MAC does not match")
    assert not any("content does not match" in p for p in result.problems)  # the hashes are all sound


def test_inserted_record(service: Service, people: dict[str, Actor]) -> None:
    n = _populate(service, people)
    engine = service.ctx.engine
    _renumber(engine, 3, 1)
    _forged_row(engine, 3)
    _rehash_from(engine, 3)
    assert len(_records(engine)) == n + 1
    _broken(service, 3, "record 3: MAC does not match")


def test_appended_record(service: Service, people: dict[str, Actor]) -> None:
    n = _populate(service, people)
    engine = service.ctx.engine
    _forged_row(engine, n + 1)
    _rehash_from(engine, n + 1)
    # A MAC copied from a genuine record does not fit either: it is bound to that record's hash.
    _exec(
        engine,
        "UPDATE audit_record SET mac = (SELECT mac FROM audit_record WHERE seq = 1) WHERE seq = :s",
        s=n + 1,
    )
    _broken(service, n + 1, f"record {n + 1}: MAC does not match")


def test_appended_record_without_mac(service: Service, people: dict[str, Actor]) -> None:
    """An empty MAC does not pass a record off as one written before the key: keyed_from comes from the key
    file, not from the database."""
    n = _populate(service, people)
    engine = service.ctx.engine
    _forged_row(engine, n + 1, mac="")
    _rehash_from(engine, n + 1)
    _broken(service, n + 1, f"record {n + 1}: has no MAC")


def test_deleted_record(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people)
    _exec(service.ctx.engine, "DELETE FROM audit_record WHERE seq = 3")
    _broken(service, 3, "record 3: missing")


def test_deleted_record_renumbered_and_rehashed(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people)
    engine = service.ctx.engine
    _exec(engine, "DELETE FROM audit_record WHERE seq = 3")
    _renumber(engine, 4, -1)
    _rehash_from(engine, 3)
    _broken(service, 3, "record 3: MAC does not match")


def test_truncated_and_head_moved_back(service: Service, people: dict[str, Actor]) -> None:
    """Every record left is genuine and the head agrees with them: only the checkpoint outside the database
    shows that records 6 and 7 existed."""
    n = _populate(service, people)
    assert service.audit.checkpoint() == n + 1
    engine = service.ctx.engine
    _exec(engine, "DELETE FROM audit_record WHERE seq > :s", s=n - 1)
    _rehash_from(engine, 1)  # changes nothing but the head: (n - 1, its hash)
    result = _broken(service, n, f"vouches for record {n + 1}, but the chain ends at record {n - 1}")
    assert result.records == n - 1 == result.head_seq


def test_head_moved_back_alone(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people)
    _exec(service.ctx.engine, "UPDATE audit_head SET seq = 4")
    _broken(service, 5, "chain ends at record 6 but the head says 4")


# -- checkpoints --------------------------------------------------------------------------------------------


def _every(service: Service, records: int) -> Service:
    policy = AuditPolicy(checkpoint_every_records=records, checkpoint_every=timedelta(minutes=60))
    service.ctx.policies = dataclasses.replace(service.ctx.policies, audit=policy)
    return service


def test_what_a_checkpoint_interval_leaves_exposed(service: Service, people: dict[str, Actor]) -> None:
    """Checkpoints every 5 records: the records after the newest checkpoint can be cut off unnoticed (the
    window the interval leaves); one more, and the checkpoint shows it. A forged record appended in that same
    window is still caught: its MAC needs the key."""
    engine = service.ctx.engine
    n = _populate(_every(service, 5), people, 6)
    seqs = [json.loads(line)["seq"] for line in service.ctx.seal().checkpoints.path.read_text().splitlines()]
    assert seqs == [1, 6, 11]  # the first write, then each write 5 records past the last checkpoint
    assert n == 12

    _exec(engine, "DELETE FROM audit_record WHERE seq = 12")
    _rehash_from(engine, 1)
    exposed = service.audit.verify()
    assert exposed.ok, exposed.problems  # record 12 is gone and nothing can tell

    _forged_row(engine, 12)
    _rehash_from(engine, 12)
    _broken(service, 12, "record 12: MAC does not match")

    _exec(engine, "DELETE FROM audit_record WHERE seq >= 11")
    _rehash_from(engine, 1)
    _broken(service, 11, "vouches for record 11, but the chain ends at record 10")


def test_the_interval_is_also_minutes(service: Service, people: dict[str, Actor], clock: FixedClock) -> None:
    _every(service, 1000)
    _populate(service, people, 1)
    clock.advance(timedelta(minutes=59))
    _populate(service, people, 1)
    assert service.audit.verify().last_checkpoint == 1
    clock.advance(timedelta(minutes=1))
    _populate(service, people, 1)
    assert service.audit.verify().last_checkpoint == 5  # the first write an hour after the last checkpoint


def test_every_crl_publication_checkpoints_the_head(ca_service: Service, people: dict[str, Actor]) -> None:
    _every(ca_service, 1000)
    ca_service.crl.publish(actor=None)
    head = ca_service.audit.verify().head_seq
    last = ca_service.ctx.seal().checkpoints.last()
    assert last is not None and (last.seq, last.reason) == (head, "crl")


def test_a_forged_or_damaged_checkpoint_is_reported(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people)
    path = service.ctx.seal().checkpoints.path
    genuine = json.loads(path.read_text().splitlines()[0])
    forged = {**genuine, "seq": 99}  # the attacker wants verify to believe records were cut off
    with path.open("a") as f:
        f.write(json.dumps(forged) + "\n")
        f.write('{"seq": 3, "hash"\n')
    result = service.audit.verify()
    assert result.problems == [
        "checkpoint line 2 (record 99): MAC does not match (forged, edited, or made with another audit key)"
    ]
    # An unreadable line is what a kill half-way through an append leaves: noted, but it proves nothing.
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("checkpoint line 3: unreadable (not a checkpoint: ")
    assert result.untrusted_from is None  # the records themselves are sound


def test_a_torn_last_line_is_fenced_off(tmp_path: Path, service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people, 1)
    path = service.ctx.seal().checkpoints.path
    with path.open("ab") as f:
        f.write(b'{"seq": 2, "ha')  # a kill half-way through an append
    service.audit.checkpoint()
    lines = path.read_bytes().splitlines()
    assert lines[-2] == b'{"seq": 2, "ha'
    assert json.loads(lines[-1])["reason"] == "manual"
    result = service.audit.verify()
    assert result.ok, result.problems
    assert len(result.warnings) == 1 and result.warnings[0].startswith("checkpoint line 2: unreadable")


def test_a_sink_that_fails_does_not_undo_the_change(
    service: Service, people: dict[str, Actor], caplog: pytest.LogCaptureFixture
) -> None:
    """The write is committed and MAC'd before its checkpoint is written: a sink that fails (full, gone,
    read-only) is logged, the change stands, and the next write tries again."""
    path = service.ctx.seal().checkpoints.path
    path.mkdir(parents=True)  # a directory where the file should be: every append fails
    with caplog.at_level("ERROR", logger="pki.audit"):
        _populate(service, people, 1)
    assert "audit checkpoint not written to" in caplog.text
    assert len(service.requests.find()) == 1
    path.rmdir()
    _populate(service, people, 1)
    assert service.audit.verify().ok


def test_a_checkpoint_file_gone_is_a_warning(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people, 1)
    service.ctx.seal().checkpoints.path.unlink()
    result = service.audit.verify()
    # A writer commits before it checkpoints: between the two a sound chain has none yet. Not a failure,
    # but said, since nothing could notice a cut tail.
    assert result.ok and result.untrusted_from is None
    assert result.warnings == ["no checkpoint: records cut off the end of the chain could not be noticed"]


# -- without the key ------------------------------------------------------------------------------------------


def test_a_write_without_the_key_is_refused_and_nothing_is_written(
    engine: Engine, clock: FixedClock, tmp_path: Path, people: dict[str, Actor]
) -> None:
    locked = Service(engine, clock=clock, audit_seal=AuditSeal(tmp_path / "audit.key", None, tmp_path / "cp"))
    with pytest.raises(KeyAccessError, match="the audit key is locked: set PKI_AUDIT_PASSPHRASE"):
        locked.requests.create(application(), actor=people["clerk"])
    unconfigured = Service(engine, clock=clock)
    with pytest.raises(KeyAccessError, match="no audit key configured"):
        unconfigured.requests.create(application(), actor=people["clerk"])
    assert locked.requests.find() == [] and _records(engine) == []


def test_a_raw_session_without_the_key_cannot_append(service: Service) -> None:
    from sqlmodel import Session

    with Session(service.ctx.engine) as s, s.begin(), pytest.raises(KeyAccessError, match="no audit key"):
        audit.append(s, at=T0, actor="t", action="test")
    assert _records(service.ctx.engine) == []


def test_another_key_finds_every_record_forged(
    service: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    _populate(service, people, 1)
    stranger = AuditSeal.fixed(AuditKey(b"\xff" * 32, 1), service.ctx.seal().checkpoints.path)
    result = Service(service.ctx.engine, audit_seal=stranger).audit.verify()
    assert result.untrusted_from == 1
    assert "record 1: MAC does not match (forged, or edited and re-hashed)" in result.problems
    assert "checkpoint line 1 (record 1): MAC does not match" in result.problems[0]


# -- a home that had records before it had a key ----------------------------------------------------------


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)


def _home_at_0007_with_records(db_url: str, n: int) -> Engine:
    """A database migrated only to 0007 (before keyed audit) holding ``n`` records, as an older pkictl wrote
    them; then migrated to the newest schema, as `pkictl init` does."""
    from alembic import command

    engine = make_engine(db_url)
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn  # type: ignore[attr-defined]
        command.upgrade(cfg, "0007")  # type: ignore[arg-type]
    prev = audit.GENESIS_HASH
    with engine.begin() as conn:
        for seq in range(1, n + 1):
            row: dict[str, Any] = {
                "seq": seq,
                "at": T0,
                "actor": "old",
                "action": "user.add",
                "subject_type": "user",
                "subject_id": f"u{seq}",
                "details": "{}",
                "prev_hash": prev,
            }
            row["hash"] = prev = audit.record_hash(**row)
            _insert(conn, row)
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": n, "h": prev})
    migrate(engine)
    return engine


def test_an_existing_home_gets_its_key_and_older_records_are_sealed(
    db_url: str, clock: FixedClock, tmp_path: Path, cheap_kdf: None
) -> None:
    engine = _home_at_0007_with_records(db_url, 3)
    try:
        seal = AuditSeal(
            tmp_path / "audit" / "audit.key",
            PassphraseProtection(lambda: "audit-passphrase-1"),
            tmp_path / "cp.jsonl",
        )
        svc = Service(
            engine, clock=clock, keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE), audit_seal=seal
        )
        key = svc.audit.establish_key()
        assert key is not None and key.keyed_from == 4
        assert svc.audit.establish_key() is None  # init again: the key stays

        result = svc.audit.verify()
        assert result.ok, result.problems
        assert (result.keyed_from, result.records, result.last_checkpoint) == (4, 4, 4)
        rows = _records(engine)
        assert [r["mac"] for r in rows[:3]] == ["", "", ""] and len(rows[3]["mac"]) == 64
        assert rows[3]["action"] == "audit.keyed"

        # The unkeyed records cannot name which of them changed, only that they are no longer as sealed.
        _exec(engine, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 2")
        _rehash_from(engine, 2)
        result = svc.audit.verify()
        assert result.untrusted_from == 1, result.problems
        assert any("record 4: differs from checkpoint line 1" in p for p in result.problems)
    finally:
        engine.dispose()


def test_unkeyed_records_without_their_seal_are_reported(
    db_url: str, clock: FixedClock, tmp_path: Path, cheap_kdf: None
) -> None:
    engine = _home_at_0007_with_records(db_url, 2)
    try:
        seal = AuditSeal(
            tmp_path / "audit" / "audit.key",
            PassphraseProtection(lambda: "audit-passphrase-1"),
            tmp_path / "cp.jsonl",
        )
        svc = Service(engine, clock=clock, audit_seal=seal)
        svc.audit.establish_key()
        (tmp_path / "cp.jsonl").unlink()
        result = svc.audit.verify()
        assert result.problems == ["records 1–2 predate the audit key and no checkpoint seals them"]
        assert result.untrusted_from == 1
    finally:
        engine.dispose()


def test_a_second_home_on_a_keyed_database_makes_no_key_of_its_own(
    service: Service, people: dict[str, Actor], tmp_path: Path, cheap_kdf: None
) -> None:
    """A second server on the same database without the key file must not mint a key of its own: the first
    home's records would all fail its MACs."""
    _populate(service, people, 1)
    key_path = tmp_path / "second" / "audit" / "audit.key"
    second = Service(
        service.ctx.engine,
        audit_seal=AuditSeal(
            key_path, PassphraseProtection(lambda: "audit-passphrase-2"), tmp_path / "second.jsonl"
        ),
    )
    with pytest.raises(ConflictError, match=r"keyed already: copy audit/audit\.key"):
        second.audit.establish_key()
    assert not key_path.exists()
