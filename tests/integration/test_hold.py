"""Hold and release (冻结/解冻, RFC 5280 certificateHold): the next CRL and the very next OCSP answer show
each change, a release takes the certificate off the next CRL, a held certificate is refused at access and
can still be revoked for good, and a hold left past ca.toml [hold] max_days is revoked by the next CRL
publication."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlmodel import Session, select

from pki.clock import FixedClock
from pki.enums import CertificateStatus, RevocationReason
from pki.errors import ConflictError, PermissionDeniedError
from pki.models import AuditRecord
from pki.services import Actor, Service
from tests.support.pki import approved, csr_for, key

_keys = iter(range(5200, 5400))


def issued(service: Service, people: dict[str, Actor]) -> x509.Certificate:
    rid = approved(service, people)
    row = service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )
    return x509.load_der_x509_certificate(row.der)


def on_crl(service: Service, serial: int) -> x509.ReasonFlags | bool | None:
    """The reason the next test CRL gives for ``serial``; False when it is not listed."""
    published = {p.ca: p.record for p in service.crl.publish()}
    crl = x509.load_der_x509_crl(published["test"].der)
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    if entry is None:
        return False
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def ocsp_status(
    service: Service, cert: x509.Certificate
) -> tuple[ocsp.OCSPCertStatus, x509.ReasonFlags | None]:
    issuer = service.authority.get("test").certificate
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, cert.signature_hash_algorithm).build()  # type: ignore[arg-type]
    answer = ocsp.load_der_ocsp_response(service.ocsp.respond(req.public_bytes(Encoding.DER)))
    status = answer.certificate_status
    return status, answer.revocation_reason if status is ocsp.OCSPCertStatus.REVOKED else None


def test_hold_then_release(ca_service: Service, people: dict[str, Actor], tmp_path: Path) -> None:
    cert = issued(ca_service, people)
    serial = f"{cert.serial_number:X}"
    ops = people["ops"]
    with pytest.raises(PermissionDeniedError):
        ca_service.revocation.hold(serial, actor=people["clerk"])
    held = ca_service.revocation.hold(serial, actor=ops, comment="单位申请冻结")
    assert held.revocation_reason is RevocationReason.CERTIFICATE_HOLD
    assert ca_service.certificates.status_of(held) == "held"
    assert ocsp_status(ca_service, cert) == (ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold)
    assert on_crl(ca_service, cert.serial_number) is x509.ReasonFlags.certificate_hold
    # openssl, a judge nobody here wrote, reads the hold off the CRL.
    crl_path = tmp_path / "test.crl"
    crl_path.write_bytes(ca_service.crl.latest("test").der)
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(crl_path), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Certificate Hold" in text and serial in text.replace(":", "").upper()
    with pytest.raises(ConflictError, match="already held"):
        ca_service.revocation.hold(serial, actor=ops)

    released = ca_service.revocation.release(serial, actor=ops)
    assert released.status is CertificateStatus.VALID and released.revoked_at is None
    assert ocsp_status(ca_service, cert) == (ocsp.OCSPCertStatus.GOOD, None)
    assert on_crl(ca_service, cert.serial_number) is False  # simply gone from the next CRL
    with pytest.raises(ConflictError, match="not held"):
        ca_service.revocation.release(serial, actor=ops)
    with Session(ca_service.ctx.engine) as s:
        actions = list(s.exec(select(AuditRecord.action).where(AuditRecord.subject_id == serial)))
    assert actions[-2:] == ["certificate.hold", "certificate.release"]


def test_a_held_certificate_is_refused_and_can_be_revoked(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    cert = issued(ca_service, people)
    serial = f"{cert.serial_number:X}"
    ca_service.revocation.hold(serial, actor=people["ops"])
    pem = cert.public_bytes(Encoding.PEM)
    decision = ca_service.access.check(pem, platform="test", at=ca_service.ctx.now())
    assert "revoked" in " ".join(decision.reasons + decision.warnings).lower()
    done = ca_service.revocation.revoke(serial, "keyCompromise", actor=people["ops"])
    assert done.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert ocsp_status(ca_service, cert) == (ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise)
    with pytest.raises(ConflictError, match="not held"):
        ca_service.revocation.release(serial, actor=people["ops"])


def test_a_hold_past_its_maximum_is_revoked_at_the_next_crl(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    cert = issued(ca_service, people)
    serial = f"{cert.serial_number:X}"
    ca_service.revocation.hold(serial, actor=people["ops"])
    clock.advance(timedelta(days=ca_service.ctx.policies.ca.hold_max_days - 1))
    assert on_crl(ca_service, cert.serial_number) is x509.ReasonFlags.certificate_hold  # not yet
    clock.advance(timedelta(days=1))
    assert on_crl(ca_service, cert.serial_number) is x509.ReasonFlags.cessation_of_operation
    row = ca_service.certificates.get(serial)
    assert row.revocation_reason is RevocationReason.CESSATION_OF_OPERATION and row.revoked_by == "system"
    assert "held longer than 90 days" in row.revocation_comment
    with pytest.raises(ConflictError, match="not held"):
        ca_service.revocation.release(serial, actor=people["ops"])
