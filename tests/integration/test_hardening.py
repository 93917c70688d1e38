"""Rules added after review: concurrency, stale rights, duplicates, timing, hostile files."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

import pki.passwords
from pki.clock import FixedClock
from pki.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    ValidationError,
)
from pki.services import Actor, Service
from tests.support.data import application, batch_defaults, make_uscc


def test_application_date_follows_the_beijing_calendar(
    service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    """At 15:59:59Z it is still 23:59:59 on the 20th in Beijing; one second later it is the 21st there."""
    clock.set(datetime(2020, 10, 20, 15, 59, 59, tzinfo=UTC))
    with pytest.raises(ValidationError) as info:
        service.requests.create(application(application_date="2020-10-21"), actor=people["clerk"])
    assert info.value.errors[0].field == "application_date"
    clock.set(datetime(2020, 10, 20, 16, 0, 0, tzinfo=UTC))
    assert service.requests.create(application(application_date="2020-10-21"), actor=people["clerk"]).id


def test_deactivated_user_loses_rights_at_once(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    with service.ctx.engine.begin() as conn:
        conn.execute(text("UPDATE pki_user SET active = false WHERE username = 'acceptor'"))
    with pytest.raises(PermissionDeniedError, match="deactivated"):
        service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    assert service.audit.recent(limit=1)[0].action == "security.denied"
    assert service.requests.allowed_actions(req.id, people["acceptor"]) == frozenset()


def test_roles_are_read_from_the_user_record(service: Service, people: dict[str, Actor]) -> None:
    """An Actor object claiming a role the user does not have gets nothing."""
    forged = Actor("clerk", frozenset({"acceptor"}))
    req = service.requests.create(application(), actor=people["clerk2"])
    assert req.id is not None
    with pytest.raises(PermissionDeniedError):
        service.requests.accept(req.id, actor=forged, agree=True, usbkey_model="ePass3003")
    with pytest.raises(PermissionDeniedError, match="unknown"):
        service.requests.create(
            application(credential_number=make_uscc("110101", "55555555")),
            actor=Actor("ghost", frozenset({"entry"})),
        )


def test_an_edit_that_changes_nothing_is_refused(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    with pytest.raises(ValidationError, match="nothing changed"):
        service.requests.edit(req.id, application(), actor=people["clerk"])
    assert service.requests.get(req.id).accepted_by == "acceptor"


def test_one_open_request_per_unit_kind_and_system(service: Service, people: dict[str, Actor]) -> None:
    first = service.requests.create(application(), actor=people["clerk"])
    with pytest.raises(ConflictError, match=f"request {first.id}"):
        service.requests.create(application(), actor=people["clerk2"])
    # Another system, or the formal kind, is a different request.
    service.requests.create(application(target_system="另一个系统"), actor=people["clerk"])
    service.requests.create(application(access_type="formal"), actor=people["clerk"])
    assert first.id is not None
    service.requests.cancel(first.id, actor=people["ops"], reason="重复申请")
    assert service.requests.create(application(), actor=people["clerk"]).id  # finished requests do not count


def test_importing_the_same_list_twice(service: Service, people: dict[str, Actor]) -> None:
    data = ("单位名称,统一社会信用代码\n甲厂," + make_uscc("110101", "40000001") + "\n").encode()
    service.bulk.import_units(data, actor=people["clerk"], defaults=batch_defaults(), label="b1")
    with pytest.raises(Exception, match="1 of 1 rows are invalid") as info:
        service.bulk.import_units(data, actor=people["clerk"], defaults=batch_defaults(), label="b2")
    assert "open request" in str(info.value.rows[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        (b"\xff\xfe\x00\xd8\x00\xdc\xff", "not a text file"),
        ('单位名称,统一社会信用代码\n"'.encode() + b"x" * 200_000 + b"\n", "not a readable CSV"),
    ],
    ids=["undecodable", "oversized-field"],
)
def test_hostile_files_are_clear_errors(
    service: Service, people: dict[str, Actor], data: bytes, expect: str
) -> None:
    with pytest.raises(ValidationError, match=expect):
        service.bulk.import_units(data, actor=people["clerk"], defaults=batch_defaults(), label="b")


def test_blank_header_columns_are_ignored_unless_they_hold_data(
    service: Service, people: dict[str, Actor]
) -> None:
    a, b = make_uscc("110101", "40000002"), make_uscc("110101", "40000003")
    data = f"单位名称,统一社会信用代码,,\n甲厂,{a},,\n乙厂,{b},,stray\n".encode()
    result = service.bulk.import_units(
        data, actor=people["clerk"], defaults=batch_defaults(), label="b", skip_invalid=True
    )
    assert len(result.request_ids) == 1 and result.rejected[0].row == 3
    assert "without a header" in result.rejected[0].errors[0].message


def test_unknown_user_costs_one_verification_and_no_hash(
    monkeypatch: pytest.MonkeyPatch, service: Service
) -> None:
    calls: list[str] = []
    real = pki.passwords._hasher

    class Counting:
        def hash(self, password: str) -> str:
            calls.append("hash")
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            calls.append("verify")
            return real.verify(stored, password)

        def check_needs_rehash(self, stored: str) -> bool:
            return real.check_needs_rehash(stored)

    monkeypatch.setattr(pki.passwords, "_hasher", Counting())
    with pytest.raises(AuthenticationError):
        service.users.authenticate("nobody", "whatever-password")
    assert calls == ["verify"]


def test_first_user_race_makes_one_admin(service: Service) -> None:
    """Two bootstrap 'user add' at once: the chain-head lock orders them, so the second is refused."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def add(name: str) -> None:
        barrier.wait()
        try:
            service.users.add(name, "a-long-password", ["admin"], actor=None)
            outcomes.append("added")
        except PermissionDeniedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(n,)) for n in ("alice", "mallory")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["added", "refused"]
    assert service.users.count() == 1


def test_verify_stays_sound_while_writers_run(service: Service, people: dict[str, Actor]) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        i = 0
        try:
            while not stop.is_set() and i < 200:
                service.requests.create(
                    application(credential_number=make_uscc("110101", f"6{i:07d}")), actor=people["clerk"]
                )
                i += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(15):
            result = service.audit.verify()
            assert result.ok, result.problems
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
