"""Issuing onto a USB key (SoftHSM2 as the real token, OpenSC's pkcs11-tool and openssl as the judges)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import PyKCS11
import pytest
from cryptography import x509
from sqlmodel import Session, select

from pki.clock import FixedClock
from pki.desk import usbkey
from pki.enums import Action, CertificateStatus, Deal, RequestState, RevocationReason, TokenState
from pki.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SeparationOfDutiesError,
    TokenError,
    ValidationError,
)
from pki.models import Certificate, HandOver, TokenCertificate, UsbToken
from pki.services import Actor, Service
from pki.services.token_issuance import Checked, PreChecked, object_label
from tests.judges.tools import AT_T0, ca_certs, run, write_pem
from tests.support.acting_desk import ActingDesk
from tests.support.data import application, make_uscc
from tests.support.devices import OnKey
from tests.support.pki import approved, csr_for, key
from tests.support.softhsm import Token, pkcs11_tool
from tokens.keys import generate_on_token
from tokens.session import Module, token_error
from tokens.usbkey import UsbKey, open_usb_key

SOFTHSM = "SoftHSM2"


def objects(token: Token) -> str:
    return pkcs11_tool(token, "--list-objects")


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_issue_onto_the_token(
    ca_service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    token: Token,
    key_type: str,
    tmp_path: Path,
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    done = ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type=key_type)

    with Session(ca_service.ctx.engine) as s:
        cert = s.exec(select(Certificate).where(Certificate.serial == done.serial)).one()
        placement = s.get(TokenCertificate, cert.id)
        tok = s.exec(select(UsbToken).where(UsbToken.serial == token.serial)).one()
    assert cert.delivered and cert.key_algorithm == key_type
    assert placement is not None and placement.key_id == done.key_id and placement.label == done.label
    assert placement.model == SOFTHSM
    assert tok.state is TokenState.ISSUED and tok.holder_credential == cert.credential_number
    req = ca_service.requests.get(rid)
    assert req.state is RequestState.ISSUED and req.issued_by == "distributor"

    # The independent judge: pkcs11-tool sees a private key that is sensitive, never extractable, local,
    # signing only, with the certificate's CKA_ID and label.
    listing = objects(token)
    priv = listing.split("Private Key Object")[1].split("Object;")[0]
    assert "sensitive" in priv and "never extractable" in priv and "local" in priv
    usage = priv.split("Usage:")[1].splitlines()[0]
    assert "sign" in usage and "decrypt" not in usage and "unwrap" not in usage and "derive" not in usage
    assert f"ID:         {done.key_id}" in priv and done.label in priv
    assert listing.count(f"ID:         {done.key_id}") == 3  # private key, public key, certificate

    # The certificate object, read by pkcs11-tool, is byte for byte the database record.
    out = tmp_path / "on-token.der"
    pkcs11_tool(token, "--read-object", "--type", "cert", "--id", done.key_id, "--output-file", str(out))
    assert out.read_bytes() == cert.der

    # And it verifies against the chain (openssl at the fixed clock).
    cas = ca_certs(ca_service)
    chain = write_pem(tmp_path / "chain.pem", cas["test"], cas["root"])
    ee = write_pem(tmp_path / "ee.pem", x509.load_der_x509_certificate(cert.der))
    verdict = run(["openssl", "verify", "-attime", AT_T0, "-CAfile", chain, ee])
    assert verdict.returncode == 0, verdict.explain()


def test_a_token_holding_objects_for_the_request_is_not_overwritten(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    label = object_label(rid, ca_service.requests.get(rid).credential_number)
    generate_on_token(device._s, "ec-p256", label)  # left by someone else
    before = objects(token)
    with pytest.raises(ConflictError, match="nothing was overwritten"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert objects(token) == before
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_failure_before_issuance_removes_the_key_and_records_nothing(
    service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    """No CA hierarchy: issuance fails after the key pair is made; the token is left as it was found."""
    rid = approved(service, people, usbkey_model=SOFTHSM)
    before = objects(token)
    with pytest.raises(ConfigurationError, match="no CA hierarchy"):
        service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert objects(token) == before
    with Session(service.ctx.engine) as s:
        assert s.exec(select(Certificate)).all() == []
        assert s.exec(select(UsbToken)).all() == []
    assert service.requests.get(rid).state is RequestState.APPROVED


def test_the_reviewer_may_not_issue_and_the_token_is_untouched(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    rid = ca_service.requests.create(application(), actor=people["clerk"]).id
    assert rid is not None
    ca_service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model=SOFTHSM)
    ca_service.requests.countersign(rid, actor=people["head"])
    ca_service.requests.review(rid, actor=people["omni"], decision=Action.APPROVE)
    before = objects(token)
    with pytest.raises(SeparationOfDutiesError, match="reviewer may not issue"):
        ca_service.token_issuance.issue(rid, device, actor=people["omni"], key_type="ec-p256")
    assert objects(token) == before
    # The distributor issues; the reviewer may not hand it over either.
    ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    with pytest.raises(SeparationOfDutiesError, match="reviewer may not issue, distribute or carry out"):
        ca_service.distribution.distribute(rid, recipient="王五", actor=people["omni"])
    assert ca_service.requests.get(rid).state is RequestState.ISSUED


def test_key_type_the_model_does_not_support_is_refused_by_policy(ca_service: Service) -> None:
    model = ca_service.ctx.policies.tokens.require_model("ePass3003")
    with pytest.raises(ValidationError, match="supports rsa-2048"):
        model.key_type("ec-p256")


def test_wrong_pin_says_so_with_what_the_token_reports(token: Token) -> None:
    module = Module(token.module)
    info = module.find(label=token.label)
    with pytest.raises(TokenError) as e, open_usb_key(module, info, "000000"):
        pass
    assert e.value.ckr == "CKR_PIN_INCORRECT"
    # SoftHSM2 sets CKF_USER_PIN_COUNT_LOW after a failed login (it never locks the PIN).
    assert "wrong PIN" in e.value.message and "few tries left" in e.value.message
    with open_usb_key(module, info, token.pin) as key:  # and the right PIN still works
        assert key.serial == token.serial


def test_absent_token(token: Token) -> None:
    with pytest.raises(TokenError, match="no token with label 'not-plugged-in' is present") as e:
        Module(token.module).find(label="not-plugged-in")
    assert e.value.ckr == "CKR_TOKEN_NOT_PRESENT"


@pytest.mark.parametrize(
    ("ckr", "text"),
    [
        ("CKR_PIN_LOCKED", "the PIN is locked"),
        ("CKR_DEVICE_MEMORY", "the token is full"),
        ("CKR_DEVICE_REMOVED", "the token was removed"),
        ("CKR_MECHANISM_INVALID", "does not support this mechanism"),
        ("CKR_GENERAL_ERROR", "still plugged in"),
        ("CKR_DEVICE_ERROR", "plug it in again"),
    ],
)
def test_errors_softhsm_cannot_produce_are_still_named(ckr: str, text: str) -> None:
    """SoftHSM2 never locks a PIN, has no memory limit and cannot be unplugged: the mapping of those codes is
    checked on the error PyKCS11 raises for them."""
    err = token_error(PyKCS11.PyKCS11Error(PyKCS11.CKR[ckr]), "writing the certificate to the token")
    assert err.ckr == ckr and text in err.message and err.message.startswith("writing the certificate")


def test_resume_refuses_another_token_and_a_second_issue_is_refused(
    ca_service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    token: Token,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)

    def unplugged(*_: object) -> None:
        raise TokenError(
            "writing the certificate to the token: the token was removed", ckr="CKR_DEVICE_REMOVED"
        )

    monkeypatch.setattr(device, "write_certificate", unplugged)
    with pytest.raises(TokenError, match="--resume"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    monkeypatch.undo()
    with Session(ca_service.ctx.engine) as s:
        pending = s.exec(select(Certificate).where(Certificate.request_id == rid)).one()
    assert not pending.delivered
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with pytest.raises(ConflictError, match="--resume"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    done = ca_service.token_issuance.resume(rid, device, actor=people["distributor"])
    assert done.resumed and done.serial == pending.serial
    assert ca_service.requests.get(rid).state is RequestState.ISSUED
    with pytest.raises(NotFoundError, match="no certificate waiting"):
        ca_service.token_issuance.resume(rid, device, actor=people["distributor"])


def test_distribute_and_mark_lost(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    done = ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    handed = ca_service.distribution.distribute(rid, recipient="  王五 ", actor=people["distributor"])
    assert handed.serial == done.serial and handed.recipient == "王五"
    req = ca_service.requests.get(rid)
    assert req.state is RequestState.DISTRIBUTED and req.distributed_by == "distributor"
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(HandOver.recipient)).all() == ["王五"]

    marked = ca_service.inventory.mark(token.serial, "lost", actor=people["ops"])
    assert marked.state is TokenState.LOST and marked.revoked == [done.serial]
    cert = ca_service.certificates.get(done.serial)
    assert (
        cert.status is CertificateStatus.REVOKED and cert.revocation_reason is RevocationReason.KEY_COMPROMISE
    )
    with pytest.raises(ConflictError, match="already lost"):
        ca_service.inventory.mark(token.serial, "lost", actor=people["ops"])
    views = ca_service.inventory.tokens()
    assert [(v.serial, v.state, v.certificates) for v in views] == [(token.serial, "lost", 1)]
    # A lost token takes no new certificate.
    rid2 = approved(ca_service, people, usbkey_model=SOFTHSM)
    with pytest.raises(ConflictError, match="recorded as lost"):
        ca_service.token_issuance.issue(rid2, device, actor=people["distributor"], key_type="ec-p256")
    ca_service.inventory.mark(token.serial, "destroyed", actor=people["distributor"])
    with pytest.raises(Exception, match="cannot be marked returned"):
        ca_service.inventory.mark(token.serial, "returned", actor=people["ops"])


def test_a_suspended_key_takes_nothing_new_until_reinstated(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    unit = make_uscc("110101", "77000001")
    first = approved(ca_service, people, usbkey_model=SOFTHSM, credential_number=unit)
    done = ca_service.token_issuance.issue(first, device, actor=people["distributor"], key_type="ec-p256")
    marked = ca_service.inventory.mark(token.serial, "suspended", actor=people["ops"], comment="核查中")
    assert marked.state is TokenState.SUSPENDED and marked.revoked == []
    with pytest.raises(ConflictError, match="already suspended"):
        ca_service.inventory.mark(token.serial, "suspended", actor=people["ops"])
    assert ca_service.certificates.get(done.serial).status is CertificateStatus.VALID  # kept
    second = approved(
        ca_service, people, usbkey_model=SOFTHSM, credential_number=unit, target_system="第二个系统"
    )
    with pytest.raises(ConflictError, match="recorded as suspended"):
        ca_service.token_issuance.issue(second, device, actor=people["distributor"], key_type="ec-p256")
    ca_service.inventory.mark(token.serial, "reinstated", actor=people["distributor"])
    again = ca_service.token_issuance.issue(second, device, actor=people["distributor"], key_type="ec-p256")
    assert again.token_serial == token.serial  # back in service with the same unit
    assert [v.state for v in ca_service.inventory.tokens()] == ["issued"]
    with pytest.raises(ConflictError, match="already issued"):
        ca_service.inventory.mark(token.serial, "reinstated", actor=people["ops"])
    # A tokens.toml without the optional marks: asking for one is a field error, not a crash.
    tokens = ca_service.ctx.policies.tokens
    required = {m: r for m, r in tokens.marks.items() if m not in ("suspended", "reinstated")}
    policies = dataclasses.replace(
        ca_service.ctx.policies, tokens=dataclasses.replace(tokens, marks=required)
    )
    plain = Service(
        ca_service.ctx.engine,
        policies=policies,
        clock=ca_service.ctx.clock,
        keys=ca_service.ctx.keys,
        audit_seal=ca_service.ctx.audit_seal,
    )
    with pytest.raises(ValidationError) as refused:
        plain.inventory.mark(token.serial, "suspended", actor=people["ops"])
    assert (
        refused.value.errors[0].field == "mark"
        and "lost, destroyed, returned" in refused.value.errors[0].message
    )


def test_renewal_revokes_the_old_certificate_at_distribution_when_policy_says_so(
    clock: FixedClock, ca_service: Service, people: dict[str, Actor], token: Token
) -> None:
    policies = dataclasses.replace(
        ca_service.ctx.policies,
        ca=dataclasses.replace(ca_service.ctx.policies.ca, revoke_superseded="distribute"),
    )
    svc = Service(
        ca_service.ctx.engine,
        policies=policies,
        clock=clock,
        keys=ca_service.ctx.keys,
        audit_seal=ca_service.ctx.audit_seal,
    )
    module = Module(token.module)

    def opened() -> Any:
        return open_usb_key(module, module.find(serial=token.serial), token.pin)

    rid = approved(svc, people, usbkey_model=SOFTHSM)
    with opened() as device:
        first = svc.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    svc.distribution.distribute(rid, recipient="王五", actor=people["distributor"])
    clock.advance(timedelta(days=365 - 30))
    ops = ActingDesk(svc, people["ops"])  # the renewal onto the key (services/token_renewal.py)
    renewed = usbkey.renew(ops, ops.call("renew.token.begin", serial=first.serial), opened, months=None)
    assert svc.certificates.get(first.serial).status is CertificateStatus.VALID  # not yet: not handed over
    handed = svc.distribution.distribute(rid, recipient="赵六", actor=people["distributor"])
    assert handed.serial == renewed["serial"] and handed.superseded_revoked == first.serial
    old = svc.certificates.get(first.serial)
    assert old.status is CertificateStatus.REVOKED and old.revocation_reason is RevocationReason.SUPERSEDED
    with pytest.raises(Exception, match="no certificate waiting to be handed over"):
        svc.distribution.distribute(rid, recipient="赵六", actor=people["distributor"])


def test_a_precheck_counts_only_for_its_request_actor_and_token(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    credential = ca_service.requests.get(rid).credential_number
    checked = ca_service.token_issuance.precheck(rid, actor=people["distributor"], token_serial=device.serial)
    assert checked == PreChecked(rid, "distributor", device.serial, Checked(credential, SOFTHSM, Deal.NEW))
    with pytest.raises(PermissionDeniedError):
        ca_service.token_issuance.precheck(rid, actor=people["reviewer"], token_serial=device.serial)
    # One made for another token is not trusted: the checks run again (and the real label is used).
    stale = PreChecked(rid, "distributor", "another-token", Checked("91XXXXXXXXXXXXXXXX", SOFTHSM, Deal.NEW))
    done = ca_service.token_issuance.issue(
        rid, device, actor=people["distributor"], key_type="ec-p256", prechecked=stale
    )
    assert done.label == object_label(rid, credential)


def test_a_pending_certificate_blocks_cancel_until_revoked_then_the_request_can_be_issued_anew(
    ca_service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)

    def full(*_: object) -> None:
        raise TokenError("writing the certificate to the token: the token is full", ckr="CKR_DEVICE_MEMORY")

    monkeypatch.setattr(device, "write_certificate", full)
    with pytest.raises(TokenError, match=r"the token is full.*--resume"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    monkeypatch.undo()
    [pending] = [q for q in ca_service.certificates.find() if q.request_id == rid]
    assert rid not in [q.id for q in ca_service.token_issuance.approved_queue()]
    with pytest.raises(ConflictError, match="not yet written"):
        ca_service.requests.cancel(rid, actor=people["head"], reason="单位撤回")
    with pytest.raises(ConflictError, match="--resume"):
        ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 901)), actor=people["distributor"])
    ca_service.revocation.revoke(pending.serial, "cessationOfOperation", actor=people["ops"])
    assert rid in [q.id for q in ca_service.token_issuance.approved_queue()]
    # The key pair of the revoked attempt is still on the token: not overwritten, removed by hand first.
    with pytest.raises(ConflictError, match="nothing was overwritten"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    with Session(ca_service.ctx.engine) as s:
        key_id = s.exec(select(TokenCertificate.key_id)).one()
    device.remove(bytes.fromhex(key_id))
    done = ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert done.serial != pending.serial and ca_service.requests.get(rid).state is RequestState.ISSUED


def test_a_key_issued_to_one_unit_takes_no_other_units_certificate(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    first = approved(ca_service, people, usbkey_model=SOFTHSM)
    ca_service.token_issuance.issue(first, device, actor=people["distributor"], key_type="ec-p256")
    other = approved(ca_service, people, usbkey_model=SOFTHSM)
    assert (
        ca_service.requests.get(other).credential_number != ca_service.requests.get(first).credential_number
    )
    before = objects(token)
    with pytest.raises(ConflictError, match="one key serves one unit"):
        ca_service.token_issuance.issue(other, device, actor=people["distributor"], key_type="ec-p256")
    assert objects(token) == before
    assert ca_service.requests.get(other).state is RequestState.APPROVED
    # Handed back to the acceptance point, the key may serve another unit.
    ca_service.inventory.mark(token.serial, "returned", actor=people["ops"])
    ca_service.token_issuance.issue(other, device, actor=people["distributor"], key_type="ec-p256")
    assert ca_service.requests.get(other).state is RequestState.ISSUED


class _MarkedLostWhileWriting(OnKey):
    """The real USB key, but ops mark it lost while the certificate is being written."""

    def __init__(self, device: UsbKey, service: Service, ops: Actor) -> None:
        super().__init__(device)
        self._service, self._ops = service, ops

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        self._service.inventory.mark(self._device.serial, "lost", actor=self._ops)
        self._device.write_certificate(der, key_id, label)


class _KeyRemovedWhileWriting(OnKey):
    """The real USB key, but another tool deletes the new private key while the certificate is written."""

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        session = self._device._s
        for handle in session.findObjects(
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, key_id)]
        ):
            session.destroyObject(handle)
        self._device.write_certificate(der, key_id, label)


class _PulledOutAfterGenerating(OnKey):
    """The real USB key, taken away right after it made the key pair: SoftHSM2's token files are deleted, so
    every later call fails the way a pulled-out key makes it fail (invalid handles, general errors)."""

    def __init__(self, device: UsbKey, token: Token) -> None:
        super().__init__(device)
        self._token = token

    def generate(self, key_type: str, label: str) -> tuple[bytes, object]:
        made = self._device.generate(key_type, label)
        tokens = self._token.conf.parent / "tokens"
        [mine] = [
            d for d in tokens.iterdir() if self._token.label.encode() in (d / "token.object").read_bytes()
        ]
        shutil.rmtree(mine)
        return made


def test_a_key_pulled_out_after_key_generation_leaves_nothing_recorded(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, token: Token
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    pulled = _PulledOutAfterGenerating(device, token)
    with pytest.raises(TokenError) as failed:
        ca_service.token_issuance.issue(rid, pulled, actor=people["distributor"], key_type="ec-p256")
    assert "gone" in failed.value.message or "plugged in" in failed.value.message, failed.value.message
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(Certificate)).all() == [] and s.exec(select(UsbToken)).all() == []


def test_a_certificate_whose_key_vanished_is_not_delivered(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    with pytest.raises(TokenError, match="no longer holds the private key"):
        ca_service.token_issuance.issue(
            rid, _KeyRemovedWhileWriting(device), actor=people["distributor"], key_type="ec-p256"
        )
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(Certificate.delivered)).all() == [False]  # recorded, waiting: revoke it


def test_a_key_marked_lost_during_the_write_is_not_delivered(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    racing = _MarkedLostWhileWriting(device, ca_service, people["ops"])
    with pytest.raises(ConflictError, match="revoked meanwhile"):
        ca_service.token_issuance.issue(rid, racing, actor=people["distributor"], key_type="ec-p256")
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        cert = s.exec(select(Certificate)).one()
        token_state = s.exec(select(UsbToken.state)).one()
    assert cert.status is CertificateStatus.REVOKED and not cert.delivered
    assert token_state is TokenState.LOST
