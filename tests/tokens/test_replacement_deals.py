"""Replacement (补办) and change (变更) deals on SoftHSM2 keys, on SQLite and PostgreSQL: a lost key's certificate revoked for
keyCompromise and the key marked lost; a damaged key taken back, its replacement keeping the old not-after
inside the key's warranty (ca.toml [replacement]) and a full validity outside it; never onto the old key. CRL
and OCSP show the change at once; openssl verifies every new certificate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlmodel import Session, select

from pki.ca.validity import add_months
from pki.clock import FixedClock
from pki.enums import CertificateStatus, Deal, RequestState, RevocationReason, TokenState
from pki.errors import InvalidTransitionError, IssuanceError, ValidationError
from pki.models import Certificate, UsbToken
from pki.services import Actor, Service
from tests.integration.test_hold import ocsp_status, on_crl
from tests.judges.tools import ca_certs, run, write_pem
from tests.support import softhsm
from tests.support.deals import deal_approved
from tests.support.pki import approved
from tests.tokens.test_usbkey_issuance import objects
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key

SOFTHSM = "SoftHSM2"


@contextmanager
def opened(token: softhsm.Token) -> Iterator[UsbKey]:
    module = Module(token.module)
    with open_usb_key(module, module.find(label=token.label), token.pin) as key:
        yield key


def _on_key(service: Service, people: dict[str, Actor], token: softhsm.Token, rid: int) -> Certificate:
    with opened(token) as device:
        done = service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    service.distribution.distribute(rid, recipient="王五", actor=people["distributor"])
    return _row(service, done.serial)


def _row(service: Service, serial: str) -> Certificate:
    with Session(service.ctx.engine) as s:
        return s.exec(select(Certificate).where(Certificate.serial == serial)).one()


def _token_state(service: Service, token: softhsm.Token) -> TokenState:
    with Session(service.ctx.engine) as s:
        return s.exec(select(UsbToken.state).where(UsbToken.serial == token.serial)).one()


def _verifies(service: Service, cert: Certificate, tmp_path: Path, clock: FixedClock) -> None:
    cas = ca_certs(service)
    chain = write_pem(tmp_path / "chain.pem", cas["test"], cas["root"])
    ee = write_pem(tmp_path / f"{cert.serial}.pem", x509.load_der_x509_certificate(cert.der))
    verdict = run(["openssl", "verify", "-attime", str(int(clock.now().timestamp())), "-CAfile", chain, ee])
    assert verdict.returncode == 0, verdict.explain()


def test_replace_a_lost_key(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path, clock: FixedClock, tmp_path: Path
) -> None:
    first, second = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    old = _on_key(
        ca_service, people, first, approved(ca_service, people, usbkey_model=SOFTHSM, validity_months=24)
    )
    rid = deal_approved(ca_service, people, Deal.REPLACE_LOST, old.serial, usbkey_model=SOFTHSM)
    assert ca_service.requests.get(rid).reviewed_by == "reviewer2"
    with opened(first) as device, pytest.raises(IssuanceError, match="another key"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert _row(ca_service, old.serial).status is CertificateStatus.VALID  # nothing happened
    clock.advance(timedelta(days=3))
    new = _on_key(ca_service, people, second, rid)

    assert ca_service.requests.get(rid).state is RequestState.DISTRIBUTED
    assert new.renewed_from_id == old.id and new.spki_sha256 != old.spki_sha256
    assert new.not_valid_after == add_months(new.not_valid_before, 24)  # a lost key: a full validity
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.KEY_COMPROMISE
    assert _token_state(ca_service, first) is TokenState.LOST
    assert _token_state(ca_service, second) is TokenState.ISSUED
    old_x509 = x509.load_der_x509_certificate(old.der)
    assert on_crl(ca_service, old_x509.serial_number) is x509.ReasonFlags.key_compromise
    assert ocsp_status(ca_service, old_x509)[1] is x509.ReasonFlags.key_compromise
    _verifies(ca_service, new, tmp_path, clock)


@pytest.mark.parametrize("fate", ["returned", "destroyed"])
def test_replace_a_damaged_key_inside_its_warranty_keeps_the_old_end(
    ca_service: Service,
    people: dict[str, Actor],
    softhsm_conf: Path,
    clock: FixedClock,
    tmp_path: Path,
    fate: str,
) -> None:
    first, second = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    old = _on_key(
        ca_service, people, first, approved(ca_service, people, usbkey_model=SOFTHSM, validity_months=24)
    )
    clock.advance(timedelta(days=200))  # inside the 12 months of tokens.toml's warranty
    rid = deal_approved(
        ca_service, people, Deal.REPLACE_DAMAGED, old.serial, usbkey_model=SOFTHSM, reason=fate
    )
    new = _on_key(ca_service, people, second, rid)
    assert new.not_valid_after == old.not_valid_after  # free, and no longer than what was paid for
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.SUPERSEDED
    assert _token_state(ca_service, first) is TokenState(fate)
    _verifies(ca_service, new, tmp_path, clock)


def test_replace_a_damaged_key_outside_its_warranty_gets_a_full_validity(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path, clock: FixedClock
) -> None:
    first, second = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    old = _on_key(
        ca_service, people, first, approved(ca_service, people, usbkey_model=SOFTHSM, validity_months=24)
    )
    clock.advance(timedelta(days=400))  # past the warranty, the certificate still valid
    with pytest.raises(ValidationError) as bad:
        ca_service.deals.open(Deal.REPLACE_DAMAGED, old.serial, actor=people["clerk2"], reason="lost")
    assert bad.value.errors[0].field == "reason"
    rid = deal_approved(ca_service, people, Deal.REPLACE_DAMAGED, old.serial, usbkey_model=SOFTHSM)
    new = _on_key(ca_service, people, second, rid)
    assert new.not_valid_after == add_months(new.not_valid_before, 24)
    assert new.not_valid_after > old.not_valid_after
    assert _token_state(ca_service, first) is TokenState.RETURNED  # the default fate


def test_a_certificate_on_no_recorded_key_has_no_key_deals(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    from tests.support.pki import csr_for, key

    cert = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 5601)), actor=people["distributor"]
    )
    for deal in (Deal.REPLACE_LOST, Deal.REPLACE_DAMAGED, Deal.UNLOCK):
        with pytest.raises(IssuanceError, match="no USB key"):
            ca_service.deals.open(deal, cert.serial, actor=people["clerk2"])


def test_a_deal_that_issues_nothing_is_refused_before_the_key_is_touched(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path
) -> None:
    first, second = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    old = _on_key(ca_service, people, first, approved(ca_service, people, usbkey_model=SOFTHSM))
    rid = deal_approved(ca_service, people, Deal.HOLD, old.serial)
    with opened(second) as device, pytest.raises(InvalidTransitionError, match="pkictl hold"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert "Object" not in objects(second)  # pkcs11-tool sees nothing made on it
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_a_change_onto_the_units_own_key_revokes_the_old_certificate_at_hand_over(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path, clock: FixedClock, tmp_path: Path
) -> None:
    from tests.support.data import application

    key = softhsm.new_token(softhsm_conf)
    old = _on_key(ca_service, people, key, approved(ca_service, people, usbkey_model=SOFTHSM))
    changed = application(credential_number=old.credential_number, unit_name="北京变更后名称中心")
    rid = deal_approved(
        ca_service,
        people,
        Deal.CHANGE,
        old.serial,
        usbkey_model=SOFTHSM,
        application=changed,
        confirm_uscc=True,
    )
    with opened(key) as device:  # a new key pair on the unit's own key, beside the old one
        done = ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert _row(ca_service, old.serial).status is CertificateStatus.VALID  # until the hand-over
    ca_service.distribution.distribute(rid, recipient="赵六", actor=people["distributor"])
    new = _row(ca_service, done.serial)
    assert "北京变更后名称中心" in new.subject and new.renewed_from_id == old.id
    assert _row(ca_service, old.serial).revocation_reason is RevocationReason.AFFILIATION_CHANGED
    assert on_crl(ca_service, int(old.serial, 16)) is x509.ReasonFlags.affiliation_changed
    assert _token_state(ca_service, key) is TokenState.ISSUED
    _verifies(ca_service, new, tmp_path, clock)
