"""The audit hash chain: written with every change, verified end to end, tampering found."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from pki import audit
from pki.enums import Action
from pki.services import Actor, Service
from tests.support.data import application, make_uscc


def _populate(service: Service, people: dict[str, Actor], n: int = 3) -> None:
    for i in range(n):
        req = service.requests.create(
            application(credential_number=make_uscc("110101", f"2000000{i}")), actor=people["clerk"]
        )
        assert req.id is not None
        service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")


def _exec(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def test_every_change_is_recorded_and_chain_verifies(service: Service, people: dict[str, Actor]) -> None:
    _populate(service, people, 3)
    result = service.audit.verify()
    assert result.ok, result.problems
    assert result.records == 6 == result.head_seq
    recs = service.audit.recent(limit=100)
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5, 6]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(recs))
    assert recs[0].at.utcoffset() is not None


def test_empty_chain_verifies(service: Service) -> None:
    result = service.audit.verify()
    assert result.ok and result.records == 0


@pytest.mark.parametrize(
    ("tamper", "expect"),
    [
        ("UPDATE audit_record SET actor = 'mallory' WHERE seq = 3", "record 3: content does not match"),
        ("UPDATE audit_record SET details = '{}' WHERE seq = 2", "record 2: content does not match"),
        ("UPDATE audit_record SET at = at + INTERVAL '1 second' WHERE seq = 4", "record 4: content"),
        ("DELETE FROM audit_record WHERE seq = 3", "record 3: missing"),
        ("DELETE FROM audit_record WHERE seq = 6", "chain ends at record 5 but the head says 6"),
        ("UPDATE audit_head SET seq = 5", "head says 5"),
    ],
    ids=["edit-actor", "edit-details", "edit-time", "delete-middle", "delete-last", "head-rewound"],
)
def test_tampering_is_found(service: Service, people: dict[str, Actor], tamper: str, expect: str) -> None:
    _populate(service, people, 3)
    engine = service.ctx.engine
    if engine.dialect.name == "sqlite" and "INTERVAL" in tamper:
        tamper = "UPDATE audit_record SET at = replace(at, '02:00:00', '02:00:01') WHERE seq = 4"
    _exec(engine, tamper)
    result = service.audit.verify()
    assert not result.ok
    assert any(expect in p for p in result.problems), result.problems


def test_reordering_is_found(service: Service, people: dict[str, Actor]) -> None:
    """Swap records 2 and 3 (their contents move, keys stay): the links no longer match."""
    _populate(service, people, 2)
    engine = service.ctx.engine
    _exec(engine, "UPDATE audit_record SET seq = 1000 WHERE seq = 2")
    _exec(engine, "UPDATE audit_record SET seq = 2 WHERE seq = 3")
    _exec(engine, "UPDATE audit_record SET seq = 3 WHERE seq = 1000")
    result = service.audit.verify()
    assert not result.ok
    assert any("does not link" in p for p in result.problems)


def test_change_fails_when_the_audit_write_fails(service: Service, people: dict[str, Actor]) -> None:
    """A database that refuses audit inserts must refuse the change too: nothing half-written."""
    engine = service.ctx.engine
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    if engine.dialect.name == "sqlite":
        _exec(
            engine,
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_record "
            "BEGIN SELECT RAISE(ABORT, 'audit store full'); END",
        )
    else:
        _exec(
            engine,
            "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit store full'; END $$ LANGUAGE plpgsql",
        )
        _exec(
            engine,
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_record FOR EACH ROW EXECUTE FUNCTION no_audit()",
        )
    with pytest.raises(Exception, match="audit store full"):
        service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    with pytest.raises(Exception, match="audit store full"):
        service.requests.create(
            application(credential_number=make_uscc("110101", "99999999")), actor=people["clerk"]
        )
    assert service.requests.get(req.id).state.value == "entered"
    assert len(service.requests.find()) == 1


def test_login_attempts_are_audited(service: Service) -> None:
    service.users.add("admin", "a-long-password", ["admin"], actor=None)
    service.users.authenticate("admin", "a-long-password")
    with pytest.raises(Exception, match="authentication failed"):
        service.users.authenticate("admin", "wrong-password")
    with pytest.raises(Exception, match="authentication failed"):
        service.users.authenticate("nobody", "whatever-pass")
    actions = [(r.action, r.actor) for r in service.audit.recent(limit=10)]
    assert actions == [
        ("user.add", "admin"),
        ("auth.login", "admin"),
        ("auth.failed", "admin"),
        ("auth.failed", "nobody"),
    ]
    details = [r.details for r in service.audit.recent(limit=10)]
    assert '"reason":"bad password"' in details[2] and '"reason":"unknown user"' in details[3]
    assert all("wrong-password" not in d for d in details)
    assert service.audit.verify().ok


def test_concurrent_writers_keep_one_unbroken_chain(service: Service, people: dict[str, Actor]) -> None:
    """Writers in parallel threads queue on the chain head; no two records share a link."""
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(5):
                code = make_uscc("110101", f"3{k:03d}{i:04d}")
                req = service.requests.create(application(credential_number=code), actor=people["clerk"])
                assert req.id is not None
                service.requests.accept(
                    req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003"
                )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    result = service.audit.verify()
    assert result.ok, result.problems
    assert result.records == 40


def test_reviewer_decisions_are_in_the_trail(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(req.id, actor=people["head"])
    service.requests.review(req.id, actor=people["reviewer"], decision=Action.REJECT, reason="证件过期")
    last = service.requests.history(req.id)[-1]
    assert (last.actor, last.action) == ("reviewer", "request.reject")
    assert '"reason":"证件过期"' in last.details and '"to":"rejected"' in last.details


def test_a_session_that_rolls_back_or_commits_reads_the_head_again(service: Service) -> None:
    """The head cached for a transaction is dropped when it ends or a savepoint rolls back: the next append in
    the same session links to what the database holds, not to records that were undone."""
    now = service.ctx.now()
    with Session(service.ctx.engine) as s:
        audit.use_key(s, service.ctx.seal().key())
        with s.begin():
            audit.append(s, at=now, actor="t", action="test.kept")
            nested = s.begin_nested()
            audit.append(s, at=now, actor="t", action="test.undone")
            nested.rollback()
            audit.append(s, at=now, actor="t", action="test.kept")
        s.begin()
        audit.append(s, at=now, actor="t", action="test.undone")
        s.rollback()
        with s.begin():
            audit.append(s, at=now, actor="t", action="test.kept")
    service.audit.checkpoint()  # raw sessions write none: without one, verify cannot rule out a cut tail
    result = service.audit.verify()
    assert result.ok, result.problems
    assert [r.action for r in service.audit.recent(limit=10)].count("test.kept") == 3
    assert "test.undone" not in [r.action for r in service.audit.recent(limit=10)]


def test_a_released_savepoint_keeps_its_records_for_the_commit(service: Service) -> None:
    """Releasing a savepoint is no commit: what was appended before and inside it is written at the
    transaction's commit, which the checkpoint after it sees."""
    now = service.ctx.now()
    with Session(service.ctx.engine) as s:
        audit.use_key(s, service.ctx.seal().key())
        with s.begin():
            audit.append(s, at=now, actor="t", action="test.before")
            with s.begin_nested():
                audit.append(s, at=now, actor="t", action="test.inside")
            assert [w.action for w in audit.waiting(s)] == ["test.before", "test.inside"]
        head = audit.committed_head(s)
    assert head is not None and head.appended
    service.audit.checkpoint()
    assert service.audit.verify().ok
    actions = [r.action for r in service.audit.recent(limit=10)]
    assert "test.before" in actions and "test.inside" in actions


def test_a_duty_check_inside_a_write_sees_what_it_appended_without_locking_the_head(
    service: Service, people: dict[str, Actor]
) -> None:
    """Separation of duties reads the trail; inside a transaction that appended, the records waiting for
    its commit count too, and reading them takes no lock on the chain's head."""
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    with pytest.raises(LookupError, match="rolled back"), service.ctx.write() as s:
        audit.append(
            s,
            at=service.ctx.now(),
            actor="acceptor",
            action=f"request.{Action.ACCEPT.value}",
            subject_type="request",
            subject_id=req.id,
        )
        assert Action.ACCEPT in service.requests._actions_by(s, req.id, "acceptor")
        assert Action.ACCEPT in service.requests.actions_by_many(s, [req.id], "acceptor")[req.id]
        assert len(audit.waiting(s)) == 1  # nothing written yet: the head is locked at the commit
        raise LookupError("rolled back: the record was the test's own")
