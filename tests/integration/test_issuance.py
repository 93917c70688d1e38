"""Issuance: profiles, validity edges, refusals, one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.clock import FixedClock
from pki.enums import Action, RequestState
from pki.errors import InvalidTransitionError, IssuanceError, SeparationOfDutiesError, ValidationError
from pki.services import Actor, Service
from tests.conftest import CA_PASSPHRASE, fixed_seal
from tests.support.data import application, make_uscc
from tests.support.pki import approved, csr_for, key

ORG_CODE_OID = x509.ObjectIdentifier("1.2.156.10260.4.1.4")


def issue(
    service: Service, people: dict[str, Actor], alg: str = "ec-p256", index: int = 0, **overrides: object
):
    rid = approved(service, people, **overrides)
    cert = service.issuance.issue_from_csr(rid, csr_for(key(alg, index)), actor=people["distributor"])
    return rid, cert, x509.load_der_x509_certificate(cert.der)


@pytest.mark.parametrize("kind", ["test", "formal"])
def test_profile_follows_the_approved_record(
    ca_service: Service, people: dict[str, Actor], kind: str
) -> None:
    rid, row, cert = issue(
        ca_service, people, index=1 if kind == "test" else 2, access_type=kind, county="西城区"
    )
    policies = ca_service.ctx.policies
    issuing = ca_service.authority.get(kind)
    assert cert.issuer == issuing.certificate.subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "北京市某能源监测中心"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "北京市某能源监测中心"
    assert cert.subject.get_attributes_for_oid(NameOID.STATE_OR_PROVINCE_NAME)[0].value == "北京"
    assert cert.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)[0].value == "西城区"
    assert (
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == row.credential_number
    )
    assert "ignored" not in cert.subject.rfc4514_string()  # never from the CSR
    policy_oids = [
        p.policy_identifier.dotted_string
        for p in cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    ]
    other = "formal" if kind == "test" else "test"
    assert policy_oids == [policies.profiles.kinds[kind].policy_oid]
    assert policies.profiles.kinds[other].policy_oid not in policy_oids
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    org = cert.extensions.get_extension_for_oid(ORG_CODE_OID).value
    assert org.value == b"\x13\x12" + row.credential_number.encode()  # type: ignore[attr-defined]
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == policies.ca.crl_url(kind)  # type: ignore[index]
    aia = {
        d.access_method.dotted_string: d.access_location.value
        for d in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    }
    assert policies.ca.ocsp_url(kind) in aia.values() and policies.ca.ca_issuers_url(kind) in aia.values()
    assert cert.serial_number.bit_length() <= 159 and row.serial == f"{cert.serial_number:X}"
    req = ca_service.requests.get(rid)
    assert req.state is RequestState.ISSUED and req.issued_by == "distributor"
    assert [h.action for h in ca_service.requests.history(rid)][-1] == "request.issue"


def test_rsa_keys_get_key_encipherment(ca_service: Service, people: dict[str, Actor]) -> None:
    _, _, cert = issue(ca_service, people, alg="rsa-2048", index=3)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_validity_is_calendar_months_from_issuance(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    clock.set(datetime(2021, 2, 28, 16, 0, 0, tzinfo=UTC))  # 2021-03-01 00:00 in Beijing
    _, row, cert = issue(ca_service, people, index=4, validity_months=36, application_date="2021-03-01")
    assert cert.not_valid_before_utc == datetime(2021, 2, 28, 16, 0, tzinfo=UTC)
    assert cert.not_valid_after_utc == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)  # 2024-03-01 00:00 Beijing
    assert row.not_valid_after == cert.not_valid_after_utc


def test_leap_day_plus_twelve_months(service: Service, people: dict[str, Actor], clock: FixedClock) -> None:
    clock.set(datetime(2020, 2, 1, tzinfo=UTC))
    service.authority.ensure_hierarchy()
    clock.set(datetime(2020, 2, 29, 2, 0, tzinfo=UTC))  # 10:00 on 29 February in Beijing
    _, _, cert = issue(service, people, index=5, application_date="2020-02-29")
    assert cert.not_valid_after_utc == datetime(2021, 2, 28, 2, 0, tzinfo=UTC)


def test_certificate_may_end_with_its_ca_but_not_after(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    ca_end = ca_service.authority.get("test").record.not_valid_after
    clock.set(ca_end.replace(year=ca_end.year - 1))  # exactly 12 months before the CA ends
    _, _, cert = issue(ca_service, people, index=6, application_date=clock.now().date().isoformat())
    assert cert.not_valid_after_utc == ca_end
    rid = approved(ca_service, people, validity_months=24, application_date=clock.now().date().isoformat())
    before = ca_service.audit.verify().records
    with pytest.raises(IssuanceError, match="after its issuing CA") as info:
        ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 7)), actor=people["distributor"])
    assert "签发CA" in info.value.message_zh
    assert ca_service.requests.get(rid).state is RequestState.APPROVED  # nothing half-written
    assert ca_service.audit.verify().records == before


def test_issuing_twice_and_unapproved_are_refused(ca_service: Service, people: dict[str, Actor]) -> None:
    rid, _, _ = issue(ca_service, people, index=8)
    with pytest.raises(InvalidTransitionError, match="issued"):
        ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 9)), actor=people["distributor"])
    fresh = ca_service.requests.create(
        application(credential_number=make_uscc("110101", "81111111")), actor=people["clerk"]
    )
    assert fresh.id is not None
    with pytest.raises(InvalidTransitionError):
        ca_service.issuance.issue_from_csr(fresh.id, csr_for(key("ec-p256", 10)), actor=people["distributor"])


def test_reviewer_may_not_issue(ca_service: Service, people: dict[str, Actor]) -> None:
    req = ca_service.requests.create(
        application(credential_number=make_uscc("110101", "82222222")), actor=people["clerk"]
    )
    assert req.id is not None
    ca_service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    ca_service.requests.countersign(req.id, actor=people["head"])
    ca_service.requests.review(req.id, actor=people["omni"], decision=Action.APPROVE)
    with pytest.raises(SeparationOfDutiesError, match="reviewer"):
        ca_service.issuance.issue_from_csr(req.id, csr_for(key("ec-p256", 11)), actor=people["omni"])


def test_bad_csrs_are_refused(ca_service: Service, people: dict[str, Actor]) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    rid = approved(ca_service, people)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point of the test)
    with pytest.raises(ValidationError, match="key type not accepted"):
        ca_service.issuance.issue_from_csr(rid, csr_for(weak), actor=people["distributor"])
    with pytest.raises(ValidationError, match="not a PKCS#10"):
        ca_service.issuance.issue_from_csr(
            rid, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", actor=people["distributor"]
        )
    der = x509.load_pem_x509_csr(csr_for(key("ec-p256", 12))).public_bytes(Encoding.DER)
    tampered = der[:-3] + bytes([der[-3] ^ 0x01]) + der[-2:]
    with pytest.raises(ValidationError) as info:
        ca_service.issuance.issue_from_csr(rid, tampered, actor=people["distributor"])
    assert info.value.errors[0].field == "csr"
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_one_key_one_unit(ca_service: Service, people: dict[str, Actor]) -> None:
    _, first, _ = issue(ca_service, people, index=13)
    rid = approved(ca_service, people)
    with pytest.raises(IssuanceError, match=f"already certified \\(certificate {first.serial}\\)"):
        ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 13)), actor=people["distributor"])


def test_batch_issuance_is_all_or_nothing(ca_service: Service, people: dict[str, Actor]) -> None:
    good = [approved(ca_service, people) for _ in range(3)]
    done = ca_service.issuance.issue_many_from_csr(
        [(rid, csr_for(key("ec-p256", 20 + i))) for i, rid in enumerate(good)], actor=people["distributor"]
    )
    assert [c.request_id for c in done] == good
    more = [approved(ca_service, people) for _ in range(2)]
    with pytest.raises(InvalidTransitionError):
        ca_service.issuance.issue_many_from_csr(
            [(more[0], csr_for(key("ec-p256", 30))), (good[0], csr_for(key("ec-p256", 31)))],
            actor=people["distributor"],
        )
    assert ca_service.requests.get(more[0]).state is RequestState.APPROVED


def test_ca_keys_are_encrypted_at_rest(ca_service: Service, tmp_path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    files = sorted((tmp_path / "ca").glob("*.key.pem"))
    assert len(files) == 6  # root, two issuing CAs, three OCSP signers
    for f in files:
        pem = f.read_bytes()
        assert b"ENCRYPTED PRIVATE KEY" in pem and f.stat().st_mode & 0o077 == 0
        with pytest.raises(TypeError):
            load_pem_private_key(pem, password=None)
        load_pem_private_key(pem, password=CA_PASSPHRASE.encode())


def test_wrong_passphrase_is_a_clear_error(engine, clock: FixedClock, tmp_path, people) -> None:
    from pki.ca.keystore import FileKeyStore
    from pki.errors import KeyAccessError

    Service(
        engine,
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE),
        audit_seal=fixed_seal(tmp_path),
    ).authority.ensure_hierarchy()
    wrong = Service(
        engine,
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: "not the passphrase"),
        audit_seal=fixed_seal(tmp_path),
    )
    rid = approved(wrong, people)
    with pytest.raises(KeyAccessError, match="passphrase is wrong"):
        wrong.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 40)), actor=people["distributor"])
    assert wrong.requests.get(rid).state is RequestState.APPROVED


def test_batch_applies_every_rule_of_the_single_path(ca_service: Service, people: dict[str, Actor]) -> None:
    ids = [approved(ca_service, people) for _ in range(3)]
    versions = [ca_service.requests.get(i).version for i in ids]
    same_key = csr_for(key("ec-p256", 60))
    with pytest.raises(IssuanceError, match="already certified"):  # one key for two units in one batch
        ca_service.issuance.issue_many_from_csr(
            [(ids[0], same_key), (ids[1], same_key)], actor=people["distributor"]
        )
    with pytest.raises(ValidationError, match="listed twice"):
        ca_service.issuance.issue_many_from_csr(
            [(ids[0], csr_for(key("ec-p256", 61))), (ids[0], csr_for(key("ec-p256", 62)))],
            actor=people["distributor"],
        )
    req = ca_service.requests.create(
        application(credential_number=make_uscc("110101", "83333333")), actor=people["clerk"]
    )
    assert req.id is not None
    ca_service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    ca_service.requests.countersign(req.id, actor=people["head"])
    ca_service.requests.review(req.id, actor=people["omni"], decision=Action.APPROVE)
    with pytest.raises(SeparationOfDutiesError, match=f"request {req.id}"):  # the reviewer, inside a batch
        ca_service.issuance.issue_many_from_csr(
            [(ids[2], csr_for(key("ec-p256", 63))), (req.id, csr_for(key("ec-p256", 64)))],
            actor=people["omni"],
        )
    assert ca_service.requests.get(ids[2]).state is RequestState.APPROVED  # nothing of the batch was kept
    done = ca_service.issuance.issue_many_from_csr(
        [(rid, csr_for(key("ec-p256", 70 + n))) for n, rid in enumerate(ids)], actor=people["distributor"]
    )
    assert [c.request_id for c in done] == ids and all(c.id for c in done)
    for rid, version, cert in zip(ids, versions, done, strict=True):
        req = ca_service.requests.get(rid)
        assert (req.state, req.version, req.issued_by) == (RequestState.ISSUED, version + 1, "distributor")
        assert ca_service.certificates.get(cert.serial).der == cert.der
        assert [h.action for h in ca_service.requests.history(rid)][-1] == "request.issue"
    assert ca_service.audit.verify().ok
