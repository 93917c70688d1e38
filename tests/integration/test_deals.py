"""The desk's deals as requests of their own type (issue 16), on SQLite and PostgreSQL: renewal before and after
expiry and outside its window, change, hold then release, revoke; each through the steps workflow.toml
[deals] gives its type, carried out by the step that does the work, with CRL and OCSP showing each change at
once and openssl verifying every new certificate."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlmodel import Session, select

from pki.ca.validity import add_months
from pki.clock import FixedClock
from pki.enums import Action, CertificateStatus, Deal, RequestState, RevocationReason
from pki.errors import (
    ConflictError,
    InvalidTransitionError,
    IssuanceError,
    PermissionDeniedError,
    SeparationOfDutiesError,
    ValidationError,
)
from pki.models import AuditRecord, Certificate
from pki.services import Actor, Service
from tests.integration.test_hold import ocsp_status, on_crl
from tests.judges.tools import ca_certs, run, write_pem
from tests.support.data import application
from tests.support.deals import deal_approved
from tests.support.pki import approved, csr_for, key

_keys = iter(range(5400, 5600))


def _issued(
    service: Service, people: dict[str, Actor], months: int = 24, index: int | None = None
) -> Certificate:
    rid = approved(service, people, validity_months=months)
    csr = csr_for(key("ec-p256", next(_keys) if index is None else index))
    return service.issuance.issue_from_csr(rid, csr, actor=people["distributor"])


def _row(service: Service, serial: str) -> Certificate:
    with Session(service.ctx.engine) as s:
        return s.exec(select(Certificate).where(Certificate.serial == serial)).one()


def _openssl_verifies(service: Service, der: bytes, tmp_path: Path, when: FixedClock) -> None:
    cas = ca_certs(service)
    chain = write_pem(tmp_path / "chain.pem", cas["test"], cas["root"])
    ee = write_pem(tmp_path / "ee.pem", x509.load_der_x509_certificate(der))
    at = str(int(when.now().timestamp()))
    verdict = run(["openssl", "verify", "-attime", at, "-CAfile", chain, ee])
    assert verdict.returncode == 0, verdict.explain()


# -- renewal -------------------------------------------------------------------------------------------------


def test_renew_deal_before_expiry_carries_the_months_over(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, tmp_path: Path
) -> None:
    old = _issued(ca_service, people, months=12)
    with pytest.raises(IssuanceError, match="can be renewed from"):  # outside the window: refused at entry
        ca_service.deals.open(Deal.RENEW, old.serial, actor=people["clerk2"])
    clock.set(old.not_valid_after - timedelta(days=30))
    rid = deal_approved(ca_service, people, Deal.RENEW, old.serial, months=24)
    req = ca_service.requests.get(rid)
    assert req.validity_months == 24 and req.unit_name == old.unit_name
    assert req.subject_certificate_id == old.id and req.reviewed_by == "reviewer2"
    assert req.countersigned_by is None  # [deals.renew] needs no countersignature
    with pytest.raises(PermissionDeniedError):  # the distributor, not ops: needs no deal … but has one
        ca_service.renewal.renew(old.serial, actor=people["clerk"])
    new = ca_service.renewal.renew(old.serial, actor=people["distributor"])
    assert new.request_id == rid and new.renewed_from_id == old.id
    assert new.not_valid_after == add_months(old.not_valid_after, 24)  # counted from the old end
    assert new.spki_sha256 == old.spki_sha256  # the same key, certified again
    assert ca_service.requests.get(rid).state is RequestState.ISSUED
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.SUPERSEDED
    ca_service.distribution.distribute(rid, recipient="张三", actor=people["distributor"])
    assert ca_service.requests.get(rid).state is RequestState.DISTRIBUTED
    _openssl_verifies(ca_service, new.der, tmp_path, clock)
    with pytest.raises(IssuanceError, match="is revoked"):  # superseded: no second renewal of it
        ca_service.deals.open(Deal.RENEW, old.serial, actor=people["clerk2"])


def test_renew_deal_after_expiry_counts_from_the_day_and_keeps_the_old_one(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    old = _issued(ca_service, people, months=12)
    clock.set(old.not_valid_after + timedelta(days=100))
    rid = deal_approved(ca_service, people, Deal.RENEW, old.serial)
    new = ca_service.renewal.renew(old.serial, actor=people["distributor"])
    now = clock.now().replace(microsecond=0)
    assert new.not_valid_after == add_months(now, 12) and new.request_id == rid
    assert _row(ca_service, old.serial).status is CertificateStatus.VALID  # expired, not revoked
    clock.set(old.not_valid_after + timedelta(days=366))
    other = _issued(ca_service, people, months=12)
    clock.set(other.not_valid_after + timedelta(days=366))
    with pytest.raises(IssuanceError, match="more than 365 days ago"):
        ca_service.deals.open(Deal.RENEW, other.serial, actor=people["clerk2"])


def test_rekey_deal_needs_a_new_key_and_a_renew_deal_the_old_one(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, tmp_path: Path
) -> None:
    old = _issued(ca_service, people, months=12, index=5399)
    clock.set(old.not_valid_after - timedelta(days=10))
    rid = deal_approved(ca_service, people, Deal.REKEY, old.serial)
    with pytest.raises(IssuanceError, match=f"certificate {old.serial}"):  # the old key again: refused
        ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 5399)), actor=people["distributor"])
    new = ca_service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )
    assert new.renewed_from_id == old.id and new.spki_sha256 != old.spki_sha256
    _openssl_verifies(ca_service, new.der, tmp_path, clock)

    other = _issued(ca_service, people, months=12)
    clock.set(other.not_valid_after - timedelta(days=10))
    renew = deal_approved(ca_service, people, Deal.RENEW, other.serial)
    with pytest.raises(IssuanceError, match="renew deal"):
        ca_service.issuance.issue_from_csr(
            renew, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
        )


# -- change ----------------------------------------------------------------------------------------------------


def test_change_deal_issues_for_the_new_details_and_revokes_the_old_at_hand_over(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, tmp_path: Path
) -> None:
    old = _issued(ca_service, people)
    original = ca_service.requests.get(old.request_id or 0)
    changed = application(credential_number=original.credential_number, unit_name="北京新名称能源有限公司")
    with pytest.raises(ValidationError) as refused:  # another credit code is another unit
        ca_service.deals.open(Deal.CHANGE, old.serial, actor=people["clerk2"], application=application())
    assert refused.value.errors[0].field == "credential_number"
    with pytest.raises(ValidationError, match="changed form"):
        ca_service.deals.open(Deal.CHANGE, old.serial, actor=people["clerk2"])
    rid = deal_approved(ca_service, people, Deal.CHANGE, old.serial, application=changed, confirm_uscc=True)
    req = ca_service.requests.get(rid)
    assert req.countersigned_by == "head" and req.reviewed_by == "reviewer2"  # a change takes every step
    new = ca_service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )
    assert "北京新名称能源有限公司" in x509.load_der_x509_certificate(new.der).subject.rfc4514_string()
    assert _row(ca_service, old.serial).status is CertificateStatus.VALID  # until the hand-over
    done = ca_service.distribution.distribute(rid, recipient="李四", actor=people["distributor"])
    assert done.superseded_revoked == old.serial
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.AFFILIATION_CHANGED
    assert on_crl(ca_service, int(old.serial, 16)) is x509.ReasonFlags.affiliation_changed
    _openssl_verifies(ca_service, new.der, tmp_path, clock)


# -- hold, release, revoke --------------------------------------------------------------------------------------


def test_hold_then_release_as_deals(ca_service: Service, people: dict[str, Actor]) -> None:
    old = _issued(ca_service, people)
    cert = x509.load_der_x509_certificate(old.der)
    hold = deal_approved(ca_service, people, Deal.HOLD, old.serial, comment="单位申请冻结")
    req = ca_service.requests.get(hold)
    assert req.reviewed_by is None and req.countersigned_by is None  # accepted and done at once
    with pytest.raises(InvalidTransitionError, match="issues no certificate"):
        ca_service.issuance.issue_from_csr(
            hold, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
        )
    with pytest.raises(PermissionDeniedError, match="no role that may hold"):
        ca_service.revocation.hold(old.serial, actor=people["distributor"])
    ca_service.revocation.hold(old.serial, actor=people["ops"])
    assert ca_service.requests.get(hold).state is RequestState.COMPLETED
    assert on_crl(ca_service, cert.serial_number) is x509.ReasonFlags.certificate_hold
    assert ocsp_status(ca_service, cert)[1] is x509.ReasonFlags.certificate_hold

    release = deal_approved(ca_service, people, Deal.RELEASE, old.serial)
    assert ca_service.requests.get(release).reviewed_by == "reviewer2"  # a release is reviewed
    ca_service.revocation.release(old.serial, actor=people["ops"])
    assert ca_service.requests.get(release).state is RequestState.COMPLETED
    assert on_crl(ca_service, cert.serial_number) is False
    assert ocsp_status(ca_service, cert)[0].name == "GOOD"
    with Session(ca_service.ctx.engine) as s:
        done = s.exec(
            select(AuditRecord).where(
                AuditRecord.action == "request.complete", AuditRecord.subject_id == str(hold)
            )
        ).one()
    assert done.actor == "ops" and json.loads(done.details)["to"] == "completed"


def test_without_a_deal_only_ops_act_and_others_are_sent_to_the_deal(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    old = _issued(ca_service, people)
    with pytest.raises(PermissionDeniedError, match="no role that may hold"):
        ca_service.revocation.hold(old.serial, actor=people["distributor"])
    clock.set(old.not_valid_after - timedelta(days=30))
    # the distributor carries out renew deals, so is told which one is missing
    with pytest.raises(PermissionDeniedError, match=f"--type renew --serial {old.serial}"):
        ca_service.renewal.renew(old.serial, actor=people["distributor"])
    clock.set(old.not_valid_before)
    ca_service.revocation.hold(old.serial, actor=people["ops"])  # the center's emergency hold
    with pytest.raises(IssuanceError, match="is held"):
        ca_service.deals.open(Deal.HOLD, old.serial, actor=people["clerk2"])


def test_revoke_deal_takes_its_reason_and_completes(ca_service: Service, people: dict[str, Actor]) -> None:
    old = _issued(ca_service, people)
    with pytest.raises(ValidationError) as bad:
        ca_service.deals.open(Deal.REVOKE, old.serial, actor=people["clerk2"], reason="certificateHold")
    assert bad.value.errors[0].field == "reason"
    rid = deal_approved(ca_service, people, Deal.REVOKE, old.serial, reason="key-compromise")
    assert ca_service.requests.get(rid).deal_reason == "keyCompromise"
    with pytest.raises(ValidationError, match="says keyCompromise"):
        ca_service.revocation.revoke(old.serial, "superseded", actor=people["ops"])
    ca_service.revocation.revoke(old.serial, None, actor=people["ops"])
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.KEY_COMPROMISE
    assert ca_service.requests.get(rid).state is RequestState.COMPLETED
    with pytest.raises(ValidationError, match="reason is required"):
        ca_service.revocation.revoke(_issued(ca_service, people).serial, None, actor=people["ops"])


# -- the rules every deal shares ----------------------------------------------------------------------------


def test_one_open_deal_per_certificate_and_the_roles_and_duties_of_its_type(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    old = _issued(ca_service, people)
    with pytest.raises(PermissionDeniedError):  # [deals.unlock] keeps [actions] enter: ops may not
        ca_service.deals.open(Deal.UNLOCK, old.serial, actor=people["ops"])
    held = ca_service.deals.open(Deal.HOLD, old.serial, actor=people["ops"])  # [deals.hold] lets ops enter
    with pytest.raises(ConflictError, match=f"open hold deal \\(request {held.id}\\)"):
        ca_service.deals.open(Deal.REVOKE, old.serial, actor=people["clerk2"])
    assert held.id is not None
    ca_service.requests.accept(held.id, actor=people["omni"], agree=True)
    with pytest.raises(SeparationOfDutiesError, match="accepted a deal"):  # nor carry out what one accepted
        ca_service.revocation.hold(old.serial, actor=people["omni"])
    ca_service.requests.cancel(held.id, actor=people["ops"], reason="单位撤回")
    again = ca_service.deals.open(Deal.REVOKE, old.serial, actor=people["clerk2"])
    assert again.deal is Deal.REVOKE and again.deal_reason == "unspecified"
    with pytest.raises(ValidationError) as bad:
        ca_service.deals.open(Deal.UNLOCK, old.serial, actor=people["clerk2"], reason="lost")
    assert bad.value.errors[0].field == "reason"
    with pytest.raises(ValidationError) as bad:
        ca_service.deals.open(Deal.HOLD, old.serial, actor=people["clerk2"], months=12)
    assert bad.value.errors[0].field == "months"


def test_a_deal_is_audited_with_its_certificate_and_listed(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    old = _issued(ca_service, people)
    rid = deal_approved(ca_service, people, Deal.HOLD, old.serial)
    history = ca_service.requests.history(rid)
    assert history[0].action == "request.enter"
    entered = json.loads(history[0].details)
    assert entered["deal"] == "hold" and entered["serial"] == old.serial
    allowed = ca_service.requests.allowed_actions(rid, people["ops"])
    assert allowed == {Action.COMPLETE, Action.CANCEL}
    assert Action.ISSUE not in ca_service.requests.allowed_actions(rid, people["omni"])
    assert RequestState.APPROVED in ca_service.requests.queue_states(people["ops"])


def test_the_key_queue_holds_only_requests_that_take_a_new_key_pair(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    old = _issued(ca_service, people, months=12)
    clock.set(old.not_valid_after - timedelta(days=30))
    fresh = approved(ca_service, people)
    renew = deal_approved(ca_service, people, Deal.RENEW, old.serial)
    other = _issued(ca_service, people, months=12)
    hold = deal_approved(ca_service, people, Deal.HOLD, other.serial)
    queued = {q.id for q in ca_service.token_issuance.approved_queue(actor=people["distributor"])}
    assert fresh in queued and renew not in queued and hold not in queued
