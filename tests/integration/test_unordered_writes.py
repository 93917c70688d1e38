"""Writes left out of the writers' order (Context.write(ordered=False), pki/audit.py order_writers): the desk's
issuance does not wait for an ordered write in progress, two issuances of one public key still cannot both
pass the "one key, one unit" rule, and a deadlock between two writers is a ConflictError, not a 500.

PostgreSQL only: on SQLite every writer takes the one write lock at BEGIN IMMEDIATE, so there is nothing to
leave out of an order."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from pki.errors import ConflictError, IssuanceError
from pki.models import Certificate, CertificateRequest
from pki.services import Actor, Service
from pki.services.issuance import IssuanceService
from tests.support.pki import approved, csr_for, key

WAIT = 10.0  # seconds: far more than any step here takes when nothing blocks it


@pytest.fixture
def pg_service(ca_service: Service) -> Service:
    if ca_service.ctx.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL lets writers run side by side")
    return ca_service


def _in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as e:  # the test reads it
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _hold_an_ordered_write(service: Service, done: threading.Event) -> threading.Thread:
    """An ordered write transaction, open in another thread until ``done`` is set."""
    holding = threading.Event()

    def hold() -> None:
        with service.ctx.write() as s:
            s.execute(text("SELECT 1"))
            holding.set()
            done.wait(WAIT)

    thread, _ = _in_thread(hold)
    assert holding.wait(WAIT)
    return thread


def _ordered_write(service: Service) -> None:
    with service.ctx.write() as s:
        s.execute(text("SELECT 1"))


def test_the_desks_issuance_does_not_wait_for_an_ordered_write(
    pg_service: Service, people: dict[str, Actor]
) -> None:
    rid = approved(pg_service, people)
    done = threading.Event()
    holder = _hold_an_ordered_write(pg_service, done)
    try:
        desk, outcome = _in_thread(
            lambda: pg_service.issuance.issue_from_csr(
                rid, csr_for(key("ec-p256", 1)), actor=people["distributor"]
            )
        )
        desk.join(WAIT)
        assert not desk.is_alive() and "value" in outcome, outcome  # done while the ordered write is open
        other, _ = _in_thread(lambda: _ordered_write(pg_service))
        other.join(0.5)
        assert other.is_alive()  # another ordered write waits for it
    finally:
        done.set()
    other.join(WAIT)
    holder.join(WAIT)
    assert not other.is_alive()
    assert pg_service.audit.verify().ok


def test_two_issuances_of_one_public_key_cannot_both_pass(
    pg_service: Service, people: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first issuance pauses after its checks, before its commit; the second, of another request with the
    same public key, waits for it, then finds the key certified."""
    first_id, second_id = approved(pg_service, people), approved(pg_service, people)
    same_key = csr_for(key("ec-p256", 7))
    paused, go_on = threading.Event(), threading.Event()
    certify = IssuanceService._certify

    def pausing(self: IssuanceService, req: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if req.id == first_id:
            paused.set()
            go_on.wait(WAIT)
        return certify(self, req, *args, **kwargs)

    monkeypatch.setattr(IssuanceService, "_certify", pausing)
    first, first_outcome = _in_thread(
        lambda: pg_service.issuance.issue_from_csr(first_id, same_key, actor=people["distributor"])
    )
    assert paused.wait(WAIT)
    second, second_outcome = _in_thread(
        lambda: pg_service.issuance.issue_from_csr(second_id, same_key, actor=people["distributor"])
    )
    second.join(0.5)
    assert second.is_alive()  # waiting for the first issuance of the key
    go_on.set()
    first.join(WAIT)
    second.join(WAIT)
    assert "value" in first_outcome, first_outcome
    assert isinstance(second_outcome.get("error"), IssuanceError), second_outcome
    assert "already certified" in str(second_outcome["error"])
    with pg_service.ctx.read() as s:
        assert s.execute(select(Certificate.request_id)).scalars().all() == [first_id]


def test_a_deadlock_between_two_writers_is_a_conflict_and_changes_nothing(
    pg_service: Service, people: dict[str, Actor]
) -> None:
    one, two = approved(pg_service, people), approved(pg_service, people)
    both_locked = threading.Barrier(2, timeout=WAIT)

    def cross(first: int, second: int) -> None:
        with pg_service.ctx.write(ordered=False) as s:
            lock = text("SELECT id FROM certificate_request WHERE id = :id FOR UPDATE")
            s.execute(lock, {"id": first})
            s.execute(text("UPDATE certificate_request SET unit_name = 'x' WHERE id = :id"), {"id": first})
            both_locked.wait()
            s.execute(lock, {"id": second})

    a, a_outcome = _in_thread(lambda: cross(one, two))
    b, b_outcome = _in_thread(lambda: cross(two, one))
    a.join(WAIT)
    b.join(WAIT)
    errors = [o["error"] for o in (a_outcome, b_outcome) if "error" in o]
    assert len(errors) == 1 and isinstance(errors[0], ConflictError), (a_outcome, b_outcome)
    assert "try again" in str(errors[0])
    with pg_service.ctx.read() as s:
        names = s.execute(
            select(CertificateRequest.unit_name).where(col(CertificateRequest.id).in_([one, two]))
        ).scalars()
        assert list(names).count("x") == 1  # the loser's change was rolled back
