"""Revocation errors, CRL contents and numbering, OCSP answers, renewal."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlmodel import Session, select

from pki.ca.validity import add_months, whole_seconds
from pki.clock import FixedClock
from pki.enums import CertificateStatus, RevocationReason
from pki.errors import ConflictError, IssuanceError, NotFoundError, PermissionDeniedError, ValidationError
from pki.models import Certificate, CrlRecord
from pki.services import Actor, CertificateFilter, Service
from tests.support.pki import approved, csr_for, key

_keys = iter(range(100, 10_000))


def issued(service: Service, people: dict[str, Actor], **overrides: object) -> Certificate:
    rid = approved(service, people, **overrides)
    return service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )


# -- revocation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["{s}", "{l}", "{c}", "00{s}", "0x{s}", " {c} "],
    ids=["upper", "lower", "colons", "leading-zeros", "0x", "spaces"],
)
def test_serial_spellings(ca_service: Service, people: dict[str, Actor], spelling: str) -> None:
    cert = issued(ca_service, people)
    s = cert.serial
    colons = ":".join(s[i : i + 2] for i in range(0, len(s), 2)).lower()
    done = ca_service.revocation.revoke(
        spelling.format(s=s, l=s.lower(), c=colons),
        "key-compromise",
        actor=people["ops"],
        comment="USB key lost",
    )
    assert (
        done.status is CertificateStatus.REVOKED and done.revocation_reason is RevocationReason.KEY_COMPROMISE
    )
    assert done.revoked_by == "ops" and done.revocation_comment == "USB key lost"
    assert done.revoked_at == ca_service.ctx.now().replace(microsecond=0)


def test_revocation_errors(ca_service: Service, people: dict[str, Actor], clock: FixedClock) -> None:
    cert = issued(ca_service, people)
    with pytest.raises(ValidationError, match="unknown reason 'bogus'"):
        ca_service.revocation.revoke(cert.serial, "bogus", actor=people["ops"])
    with pytest.raises(ValidationError, match="not a hexadecimal"):
        ca_service.revocation.revoke("XYZ", "keyCompromise", actor=people["ops"])
    with pytest.raises(NotFoundError, match="ABCDEF"):
        ca_service.revocation.revoke("abcdef", "keyCompromise", actor=people["ops"])
    with pytest.raises(PermissionDeniedError):
        ca_service.revocation.revoke(cert.serial, "keyCompromise", actor=people["clerk"])
    ca_service.revocation.revoke(cert.serial, "superseded", actor=people["ops"])
    with pytest.raises(ConflictError, match=r"already revoked .* \(superseded\)"):
        ca_service.revocation.revoke(cert.serial, "keyCompromise", actor=people["ops"])
    old = issued(ca_service, people)
    clock.advance(timedelta(days=400))
    with pytest.raises(IssuanceError, match="expired"):
        ca_service.revocation.revoke(old.serial, "keyCompromise", actor=people["ops"])


@pytest.mark.parametrize("reason", ["cACompromise", "certificateHold", "removeFromCRL", "aACompromise"])
def test_reasons_not_for_end_entities(ca_service: Service, people: dict[str, Actor], reason: str) -> None:
    cert = issued(ca_service, people)
    refusal = "a hold is not a revocation" if reason == "certificateHold" else "unknown reason"
    with pytest.raises(ValidationError, match=refusal):
        ca_service.revocation.revoke(cert.serial, reason, actor=people["ops"])


def test_bulk_revocation_is_all_or_nothing(ca_service: Service, people: dict[str, Actor]) -> None:
    a, b = issued(ca_service, people), issued(ca_service, people)
    with pytest.raises(NotFoundError):
        ca_service.revocation.revoke_many([a.serial, "DEAD"], "cessationOfOperation", actor=people["ops"])
    with pytest.raises(ValidationError, match="listed twice"):
        ca_service.revocation.revoke_many(
            [a.serial, a.serial.lower()], "cessationOfOperation", actor=people["ops"]
        )
    assert {c.status for c in ca_service.certificates.find()} == {CertificateStatus.VALID}
    done = ca_service.revocation.revoke_many(
        [a.serial, b.serial], "cessationOfOperation", actor=people["ops"]
    )
    assert [c.serial for c in done] == [a.serial, b.serial]
    assert [r.action for r in ca_service.audit.recent(limit=2)] == ["certificate.revoke"] * 2


# -- CRL ---------------------------------------------------------------------------------------------


def _crl(record_der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(record_der)


def test_crl_numbers_entries_and_expiry(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    test_ca = ca_service.authority.get("test")
    first = {p.ca: p.record for p in ca_service.crl.publish()}
    assert (
        set(first) == {"root", "test", "formal"} and first["test"].number == 1 and first["test"].entries == 0
    )
    short = issued(ca_service, people)  # 12 months
    long = issued(ca_service, people, validity_months=24)
    formal = issued(ca_service, people, access_type="formal")
    for c, why in ((short, "keyCompromise"), (long, "unspecified"), (formal, "privilegeWithdrawn")):
        ca_service.revocation.revoke(c.serial, why, actor=people["ops"])
    second = {p.ca: p.record for p in ca_service.crl.publish(actor=people["ops"])}
    crl = _crl(second["test"].der)
    assert crl.is_signature_valid(test_ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.last_update_utc == ca_service.ctx.now().replace(microsecond=0)
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=24)
    entries = {f"{r.serial_number:X}": r for r in crl}
    assert set(entries) == {short.serial, long.serial}
    assert (
        entries[short.serial].extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    assert len(entries[long.serial].extensions) == 0  # unspecified: the reason code is left out
    assert {f"{r.serial_number:X}" for r in _crl(second["formal"].der)} == {formal.serial}
    # After the 12-month certificate expires it leaves the CRL; the 24-month one stays.
    clock.advance(timedelta(days=370))
    third = {p.ca: p for p in ca_service.crl.publish()}
    assert {f"{r.serial_number:X}" for r in _crl(third["test"].record.der)} == {long.serial}
    assert third["test"].record.number == 3
    assert ca_service.crl.latest("test").number == 3


def test_crl_publish_role_and_latest_before_any(ca_service: Service, people: dict[str, Actor]) -> None:
    with pytest.raises(NotFoundError, match="no CRL published"):
        ca_service.crl.latest("test")
    with pytest.raises(PermissionDeniedError):
        ca_service.crl.publish(actor=people["clerk"])
    assert [r.action for r in ca_service.audit.recent(limit=1)] == ["security.denied"]


def test_old_crls_are_pruned_but_numbers_keep_rising(ca_service: Service) -> None:
    for _ in range(13):
        ca_service.crl.publish()
    with Session(ca_service.ctx.engine) as s:
        numbers = sorted(
            r.number
            for r in s.exec(select(CrlRecord)).all()
            if r.ca_id == ca_service.authority.get("test").id
        )
    assert numbers == list(range(4, 14))


# -- OCSP --------------------------------------------------------------------------------------------


def _ask(
    service: Service,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> ocsp.OCSPResponse:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return ocsp.load_der_ocsp_response(service.ocsp.respond(builder.build().public_bytes(Encoding.DER)))


def test_ocsp_good_revoked_unknown(ca_service: Service, people: dict[str, Actor]) -> None:
    row = issued(ca_service, people)
    cert = x509.load_der_x509_certificate(row.der)
    issuing = ca_service.authority.get("test")
    signer = ca_service.authority.get("ocsp-test").certificate
    nonce = os.urandom(16)
    good = _ask(ca_service, cert, issuing.certificate, nonce=nonce)
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert good.certificates == [signer]
    signer.public_key().verify(good.signature, good.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    assert good.next_update_utc - good.this_update_utc == timedelta(hours=24)
    ca_service.revocation.revoke(row.serial, "affiliationChanged", actor=people["ops"])
    revoked = _ask(ca_service, cert, issuing.certificate, algorithm=hashes.SHA256())  # the very next answer
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert revoked.revocation_time_utc == ca_service.ctx.now().replace(microsecond=0)
    unknown_req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(good.issuer_name_hash, good.issuer_key_hash, 12345, hashes.SHA1())
        .build()
    )
    unknown = ocsp.load_der_ocsp_response(ca_service.ocsp.respond(unknown_req.public_bytes(Encoding.DER)))
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_errors_are_unsigned(ca_service: Service, people: dict[str, Actor]) -> None:
    malformed = ocsp.load_der_ocsp_response(ca_service.ocsp.respond(b"\x30\x03\x02\x01\x01"))
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    foreign = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(b"\x01" * 20, b"\x02" * 20, 7, hashes.SHA1())
        .build()
    )
    refused = ocsp.load_der_ocsp_response(ca_service.ocsp.respond(foreign.public_bytes(Encoding.DER)))
    assert refused.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    row = issued(ca_service, people)
    too_long = _ask_raw(ca_service, row, nonce=b"n" * 129)
    assert too_long.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _ask_raw(service: Service, row: Certificate, *, nonce: bytes) -> ocsp.OCSPResponse:
    cert = x509.load_der_x509_certificate(row.der)
    return _ask(service, cert, service.authority.get("test").certificate, nonce=nonce)


# -- renewal and the worklist --------------------------------------------------------------------------


def test_renewal_window_link_and_supersession(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    old = issued(ca_service, people)
    with pytest.raises(IssuanceError, match="can be renewed from"):
        ca_service.renewal.renew(old.serial, actor=people["ops"])
    clock.set(old.not_valid_after - timedelta(days=30))
    worklist = ca_service.certificates.find(CertificateFilter(expiring_within_days=30))
    assert [c.serial for c in worklist] == [old.serial]
    with pytest.raises(PermissionDeniedError):
        ca_service.renewal.renew(old.serial, actor=people["clerk"])
    new = ca_service.renewal.renew(old.serial, actor=people["ops"], months=24)
    # Renewed 30 days early, the 24 months count from the old not-after (ca.toml [renewal] carry_over).
    assert new.not_valid_after == add_months(old.not_valid_after, 24)
    assert new.not_valid_before == ca_service.ctx.now().replace(microsecond=0)
    assert new.renewed_from_id == old.id and new.request_id == old.request_id and new.kind == old.kind
    assert new.spki_sha256 == old.spki_sha256  # same key without --rekey
    assert new.not_valid_after - new.not_valid_before > timedelta(days=700)
    refreshed = ca_service.certificates.get(old.serial)
    assert (
        refreshed.status is CertificateStatus.REVOKED
        and refreshed.revocation_reason is RevocationReason.SUPERSEDED
    )
    with pytest.raises(IssuanceError, match="revoked"):
        ca_service.renewal.renew(old.serial, actor=people["ops"])
    assert ca_service.certificates.find(CertificateFilter(expiring_within_days=30)) == []


def test_renewal_with_a_new_key(ca_service: Service, people: dict[str, Actor], clock: FixedClock) -> None:
    old = issued(ca_service, people)
    clock.set(old.not_valid_after - timedelta(days=10))
    new = ca_service.renewal.renew(old.serial, actor=people["ops"], csr=csr_for(key("ec-p384", 1)))
    assert new.key_algorithm == "ec-p384" and new.spki_sha256 != old.spki_sha256
    with pytest.raises(ValidationError, match="months"):
        ca_service.renewal.renew(new.serial, actor=people["ops"], months=13)


def test_ocsp_signers_are_rotated_before_they_end(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    before = ca_service.authority.get("ocsp-test").record
    clock.advance(timedelta(days=300))
    ca_service.crl.publish()
    assert ca_service.authority.get("ocsp-test").record.serial == before.serial  # not due yet
    clock.advance(timedelta(days=40))  # 25 days before the signer ends
    ca_service.crl.publish()
    after = ca_service.authority.get("ocsp-test").record
    assert after.serial != before.serial and after.key_ref != before.key_ref
    assert after.not_valid_before == ca_service.ctx.now().replace(microsecond=0)
    assert after.not_valid_after - after.not_valid_before == timedelta(days=365)
    rotations = [r for r in ca_service.audit.recent(limit=20) if r.action == "ca.ocsp_rotate"]
    assert sorted(r.subject_id for r in rotations) == ["ocsp-formal", "ocsp-root", "ocsp-test"]
    row = issued(ca_service, people)
    response = _ask(
        ca_service, x509.load_der_x509_certificate(row.der), ca_service.authority.get("test").certificate
    )
    assert response.certificates == [ca_service.authority.get("ocsp-test").certificate]
    assert response.next_update_utc <= after.not_valid_after


def test_renewal_refusals(ca_service: Service, people: dict[str, Actor], clock: FixedClock) -> None:
    old = issued(ca_service, people)
    clock.set(old.not_valid_after + timedelta(days=365))  # at the window's far edge: apply anew
    with pytest.raises(IssuanceError, match="more than 365 days ago"):
        ca_service.renewal.renew(old.serial, actor=people["ops"])
    late = issued(ca_service, people)
    clock.set(late.not_valid_after + timedelta(days=364))  # just inside: months from now, nothing carried
    renewed = ca_service.renewal.renew(late.serial, actor=people["ops"])
    assert renewed.not_valid_after == add_months(whole_seconds(ca_service.ctx.now()), 12)
    assert ca_service.certificates.get(late.serial).status is CertificateStatus.VALID  # expired, not revoked
    keep = issued(ca_service, people)
    ca_service.ctx.policies = __import__("dataclasses").replace(
        ca_service.ctx.policies,
        ca=__import__("dataclasses").replace(ca_service.ctx.policies.ca, revoke_superseded="never"),
    )
    clock.set(keep.not_valid_after - timedelta(days=5))
    ca_service.renewal.renew(keep.serial, actor=people["ops"])
    with pytest.raises(IssuanceError, match="already renewed"):
        ca_service.renewal.renew(keep.serial, actor=people["ops"])


def test_deactivated_user_cannot_revoke(ca_service: Service, people: dict[str, Actor]) -> None:
    from sqlalchemy import text

    cert = issued(ca_service, people)
    with ca_service.ctx.engine.begin() as conn:
        conn.execute(text("UPDATE pki_user SET active = false WHERE username = 'ops'"))
    with pytest.raises(PermissionDeniedError, match="deactivated"):
        ca_service.revocation.revoke(cert.serial, "keyCompromise", actor=people["ops"])
    assert ca_service.certificates.get(cert.serial).status is CertificateStatus.VALID


def test_a_compromised_key_is_never_certified_again(ca_service: Service, people: dict[str, Actor]) -> None:
    """Even where reuse is allowed (renewing the same request), a key revoked for compromise is refused."""
    from pki.ca.keys import spki_sha256
    from pki.models import CertificateRequest
    from pki.services.issuance import _bearing, _refuse_key_reuse

    old = issued(ca_service, people)
    ca_service.revocation.revoke(old.serial, "keyCompromise", actor=people["ops"])
    leaked = x509.load_der_x509_certificate(old.der).public_key()
    with Session(ca_service.ctx.engine) as s:
        req = s.get(CertificateRequest, old.request_id)
        assert req is not None and req.id is not None
        _, holders = _bearing(s, req.id, spki_sha256(leaked))  # type: ignore[arg-type]
        assert [serial for serial, _, _ in holders] == [old.serial]
        with pytest.raises(IssuanceError, match="revoked for key compromise"):
            _refuse_key_reuse(holders, req, renewing=True)


def test_rotation_stops_near_the_issuing_ca_end(ca_service: Service, clock: FixedClock) -> None:
    ca_end = ca_service.authority.get("test").record.not_valid_after
    clock.set(ca_end - timedelta(days=20))
    first = ca_service.authority.rotate_ocsp_signers()
    assert sorted(first) == ["ocsp-formal", "ocsp-root", "ocsp-test"]
    assert ca_service.authority.get("ocsp-test").record.not_valid_after == ca_end
    clock.advance(timedelta(days=1))
    assert ca_service.authority.rotate_ocsp_signers() == []  # a new signer could not end later


def test_an_expired_signer_answers_try_later(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    row = issued(ca_service, people)
    cert = x509.load_der_x509_certificate(row.der)
    clock.advance(timedelta(days=366))  # nobody ran the scheduled publication that rotates signers
    response = _ask(ca_service, cert, ca_service.authority.get("test").certificate)
    assert response.response_status is ocsp.OCSPResponseStatus.TRY_LATER


def test_key_compromise_revokes_every_certificate_of_the_key(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    import dataclasses

    ca = dataclasses.replace(ca_service.ctx.policies.ca, revoke_superseded="never")
    ca_service.ctx.policies = dataclasses.replace(ca_service.ctx.policies, ca=ca)
    first = issued(ca_service, people)
    other = issued(ca_service, people)
    clock.set(first.not_valid_after - timedelta(days=10))
    second = ca_service.renewal.renew(first.serial, actor=people["ops"])  # same key, both valid
    done = ca_service.revocation.revoke(second.serial, "keyCompromise", actor=people["ops"])
    assert done.serial == second.serial
    assert ca_service.certificates.get(first.serial).revocation_reason is RevocationReason.KEY_COMPROMISE
    assert ca_service.certificates.get(other.serial).status is CertificateStatus.VALID
