"""国密: an SM2 hierarchy made from policy, SM2 CSRs from OpenSSL 3 issued through the one issuance function,
the refusals (bad signature, wrong signer ID, a CSR of the other family), revocation in the SM2 CRL and OCSP,
access decisions; on SQLite and PostgreSQL. The independent judges (openssl 3.0, gmssl, pkilint) are
tests/judges/test_sm2_judges.py."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import csr as a_csr
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy.engine import Engine

from pki.ca import certs
from pki.ca.keystore import FileKeyStore
from pki.ca.sm2 import CURVE_OID, SIGNER_ID, SM3_WITH_SM2_OID, Sm2PublicKey
from pki.clock import FixedClock
from pki.enums import RequestState
from pki.errors import IssuanceError, KeyAccessError, ValidationError
from pki.services import Actor, Service
from tests.conftest import CA_PASSPHRASE, fixed_seal
from tests.support import sm2 as gm
from tests.support.pki import approved, csr_for, key

CUTOVER = datetime(2020, 11, 14, 16, 0, tzinfo=UTC)


@pytest.fixture
def sm2(engine: Engine, clock: FixedClock, tmp_path: Path) -> Service:
    return gm.sm2_service(engine, clock, tmp_path)


def _issue(service: Service, people: dict[str, Actor], csr: bytes, kind: str = "formal") -> x509.Certificate:
    row = service.issuance.issue_from_csr(
        approved(service, people, access_type=kind), csr, actor=people["distributor"]
    )
    return x509.load_der_x509_certificate(row.der)


def _signature_algorithm(cert_der: bytes) -> a_x509.SignedDigestAlgorithm:
    return a_x509.Certificate.load(cert_der)["signature_algorithm"]


def test_the_hierarchy_is_sm2_throughout(sm2: Service, tmp_path: Path) -> None:
    records = sm2.authority.all()
    assert {r.slug for r in records} == {"root", "test", "formal", "ocsp-test", "ocsp-formal", "ocsp-root"}
    for record in records:
        assert record.key_algorithm == "sm2", record.slug
        algorithm = _signature_algorithm(record.certificate_der)
        # GM/T 0015: SM3withSM2 and no parameters at all (not even NULL)
        assert algorithm["algorithm"].dotted == SM3_WITH_SM2_OID and not algorithm["parameters"].native
        spki = a_x509.Certificate.load(record.certificate_der)["tbs_certificate"]["subject_public_key_info"]
        assert spki["algorithm"]["parameters"].chosen.dotted == CURVE_OID
    issuing = sm2.authority.get("formal").certificate
    assert certs.policy_oids_of(issuing) == {sm2.ctx.policies.profiles.kinds["formal"].policy_oid}


def test_sm2_ca_keys_are_encrypted_pkcs8_that_openssl_opens(sm2: Service, tmp_path: Path) -> None:
    files = sorted((tmp_path / "ca").glob("*.key.pem"))
    assert len(files) == 6
    for path in files:
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        opened = subprocess.run(
            ["openssl", "pkey", "-in", path, "-passin", "env:PASS", "-noout", "-text"],
            capture_output=True,
            env={**os.environ, "PASS": CA_PASSPHRASE},
            check=False,
        )
        assert opened.returncode == 0 and b"ASN1 OID: SM2" in opened.stdout, opened.stderr
        wrong = subprocess.run(
            ["openssl", "pkey", "-in", path, "-passin", "pass:not-the-passphrase", "-noout"],
            capture_output=True,
            check=False,
        )
        assert wrong.returncode != 0
    # A new process's key store opens them with the passphrase, and only with it.
    root = sm2.authority.get("root")
    reopened = FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE).load(root.record.key_ref)
    assert reopened.public_key() == Sm2PublicKey.from_spki(certs.subject_public_key_info(root.certificate))
    with pytest.raises(KeyAccessError, match="passphrase is wrong"):
        FileKeyStore(tmp_path / "ca", lambda: "another-passphrase-1").load(root.record.key_ref)


def test_a_csr_from_openssl_3_is_issued_under_the_sm2_profile(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    unit_key = gm.openssl_key(tmp_path)
    csr = gm.openssl_csr(tmp_path, key=unit_key)
    cert = _issue(sm2, people, csr)
    der = cert.public_bytes(Encoding.DER)
    algorithm = _signature_algorithm(der)
    assert algorithm["algorithm"].dotted == SM3_WITH_SM2_OID and not algorithm["parameters"].native
    unit_spki = gm.openssl("pkey", "-in", unit_key, "-pubout", "-outform", "DER")
    assert certs.subject_public_key_info(cert) == unit_spki
    # The same profile as RSA and ECDSA: subject from the record, policy, organization code, CDP, AIA.
    profiles = sm2.ctx.policies.profiles
    assert certs.policy_oids_of(cert) == {profiles.kinds["formal"].policy_oid}
    code = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(profiles.organization_code_oid))
    assert code.critical is False
    assert certs.crl_urls_of(cert) == ("http://127.0.0.1:8000/crl/formal.crl",)
    assert certs.ocsp_urls_of(cert) == ("http://127.0.0.1:8000/ocsp/formal",)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment
    issuing = sm2.authority.get("formal").certificate
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    issuer_key = Sm2PublicKey.from_spki(certs.subject_public_key_info(issuing))
    assert issuer_key.verifies(cert.signature, cert.tbs_certificate_bytes)
    row = sm2.certificates.get(f"{cert.serial_number:X}")
    assert row.key_algorithm == "sm2" and row.kind.value == "formal"


def test_a_csr_signed_with_the_empty_signer_id_is_refused(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    """OpenSSL 3.0 without -sigopt distid signs with an empty ID: the signature does not verify with ours."""
    rid = approved(sm2, people, access_type="formal")
    with pytest.raises(ValidationError) as refused:
        sm2.issuance.issue_from_csr(rid, gm.openssl_csr(tmp_path, distid=False), actor=people["distributor"])
    [error] = refused.value.for_field("csr")
    assert f"signer ID {SIGNER_ID}" in error.message and "distid" in error.message
    assert "签名者ID" in error.message_zh
    assert sm2.requests.get(rid).state is RequestState.APPROVED


def test_a_csr_with_a_bad_signature_is_refused(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    csr = x509.load_pem_x509_csr(gm.openssl_csr(tmp_path))
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last octet of the signature's s
    rid = approved(sm2, people, access_type="test")
    with pytest.raises(ValidationError) as refused:
        sm2.issuance.issue_from_csr(rid, bytes(der), actor=people["distributor"])
    [error] = refused.value.for_field("csr")
    assert "SM3withSM2 signature does not verify" in error.message


def test_a_csr_whose_signature_is_not_an_sm2_signature_is_refused(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    """Octets that are no DER SM2Signature at all: refused like a bad signature (tongsuopy raises an
    internal error for them), and the library keeps working afterwards."""
    request = a_csr.CertificationRequest.load(
        x509.load_pem_x509_csr(gm.openssl_csr(tmp_path)).public_bytes(Encoding.DER)
    )
    request["signature"] = b"\x01" * 71
    rid = approved(sm2, people, access_type="formal")
    with pytest.raises(ValidationError) as refused:
        sm2.issuance.issue_from_csr(rid, request.dump(), actor=people["distributor"])
    assert refused.value.for_field("csr")
    assert _issue(sm2, people, gm.openssl_csr(tmp_path, name="after")).serial_number


@pytest.mark.parametrize("algorithm", ["rsa-2048", "ec-p256"])
def test_an_rsa_or_ecdsa_csr_is_refused_for_an_sm2_kind(
    sm2: Service, people: dict[str, Actor], algorithm: str
) -> None:
    rid = approved(sm2, people, access_type="formal")
    with pytest.raises(ValidationError) as refused:
        sm2.issuance.issue_from_csr(rid, csr_for(key(algorithm)), actor=people["distributor"])
    [error] = refused.value.for_field("csr")
    assert f"a {algorithm} key cannot be certified for kind 'formal'" in error.message
    assert "takes SM2 keys" in error.message and "只接受SM2密钥" in error.message_zh
    assert sm2.requests.get(rid).state is RequestState.APPROVED


def test_an_sm2_kind_beside_an_ecdsa_one(
    engine: Engine, clock: FixedClock, tmp_path: Path, people: dict[str, Actor]
) -> None:
    """ca.toml [issuing.formal] key_algorithm = "sm2": the formal CA is SM2 under the ECDSA root, the test CA
    stays ECDSA; each kind takes only its own family's CSRs."""
    mixed = gm.sm2_service(engine, clock, tmp_path, formal_only=True)
    assert {r.slug: r.key_algorithm for r in mixed.authority.all()} == {
        "root": "ec-p256",
        "test": "ec-p256",
        "formal": "sm2",
        "ocsp-test": "ec-p256",
        "ocsp-formal": "sm2",
        "ocsp-root": "ec-p256",
    }
    formal = _issue(mixed, people, gm.openssl_csr(tmp_path, name="formal"))
    assert formal.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID
    test = _issue(mixed, people, csr_for(key("ec-p256", 11)), kind="test")
    assert isinstance(test.signature_hash_algorithm, hashes.SHA256)
    rid = approved(mixed, people, access_type="test")
    with pytest.raises(ValidationError, match="takes RSA or ECDSA keys"):
        mixed.issuance.issue_from_csr(rid, gm.openssl_csr(tmp_path, name="t"), actor=people["distributor"])
    # The ECDSA root certified the SM2 CA: its signature is ECDSA over a TBSCertificate with an SM2 key.
    sm2_ca = mixed.authority.get("formal").certificate
    assert isinstance(sm2_ca.signature_hash_algorithm, hashes.SHA256)
    assert sm2_ca.verify_directly_issued_by(mixed.authority.get("root").certificate) is None


def test_revocation_shows_in_the_sm2_crl_and_ocsp(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    cert = _issue(sm2, people, gm.openssl_csr(tmp_path))
    issuing = sm2.authority.get("formal").certificate
    signer = sm2.authority.get("ocsp-formal").certificate
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuing, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"n" * 16), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )
    good = ocsp.load_der_ocsp_response(sm2.ocsp.respond(request))
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD

    sm2.revocation.revoke(f"{cert.serial_number:X}", "keyCompromise", actor=people["ops"])
    published = {p.ca: p.record for p in sm2.crl.publish(actor=people["ops"])}
    crl = x509.load_der_x509_crl(published["formal"].der)
    assert crl.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    issuer_key = Sm2PublicKey.from_spki(certs.subject_public_key_info(issuing))
    assert issuer_key.verifies(crl.signature, crl.tbs_certlist_bytes)

    revoked = ocsp.load_der_ocsp_response(sm2.ocsp.respond(request))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert revoked.serial_number == cert.serial_number
    assert revoked.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID
    assert revoked.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert revoked.certificates == [signer]
    assert (
        revoked.responder_key_hash
        == signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    signer_key = Sm2PublicKey.from_spki(certs.subject_public_key_info(signer))
    assert signer_key.verifies(revoked.signature, revoked.tbs_response_bytes)


def test_access_check_allows_a_valid_sm2_formal_certificate_and_refuses_it_revoked(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    cert = _issue(sm2, people, gm.openssl_csr(tmp_path))
    pem = cert.public_bytes(Encoding.PEM)
    after = CUTOVER + timedelta(days=1)
    allowed = sm2.access.check(pem, platform="production", at=after)
    assert allowed.allowed and allowed.kind == "formal", allowed.reasons
    sm2.revocation.revoke(f"{cert.serial_number:X}", "keyCompromise", actor=people["ops"])
    refused = sm2.access.check(pem, platform="production", at=after)
    assert not refused.allowed and refused.reasons == ("certificate revoked",)


def test_a_certificate_signed_with_another_signer_id_is_refused_by_access_check(
    sm2: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    """The same TBSCertificate signed by the formal CA's key with OpenSSL 3.0's empty ID: not ours."""
    cert = _issue(sm2, people, gm.openssl_csr(tmp_path))
    ca_key = tmp_path / "formal.key"
    ca_key.write_bytes(
        gm.openssl(
            "pkey",
            "-in",
            tmp_path / "ca" / sm2.authority.get("formal").record.key_ref.removeprefix("file:"),
            "-passin",
            f"pass:{CA_PASSPHRASE}",
        )
    )
    tbs = tmp_path / "tbs.der"
    tbs.write_bytes(cert.tbs_certificate_bytes)
    empty_id = gm.openssl("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", ca_key, "-in", tbs)
    forged = a_x509.Certificate.load(cert.public_bytes(Encoding.DER)).copy()
    forged["signature_value"] = empty_id
    result = sm2.access.check(forged.dump(), platform="production", at=CUTOVER + timedelta(days=1))
    assert not result.allowed and "certificate chain not valid" in result.reasons[0]


def test_renewal_certifies_the_same_sm2_key_again(
    sm2: Service, people: dict[str, Actor], tmp_path: Path, clock: FixedClock
) -> None:
    cert = _issue(sm2, people, gm.openssl_csr(tmp_path))
    clock.advance(timedelta(days=365 - 30))
    renewed = sm2.renewal.renew(f"{cert.serial_number:X}", actor=people["ops"])
    successor = x509.load_der_x509_certificate(renewed.der)
    assert certs.subject_public_key_info(successor) == certs.subject_public_key_info(cert)
    assert successor.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID


def test_issuing_cas_are_recertified_and_ocsp_signers_rotated_in_sm2(
    sm2: Service, engine: Engine, clock: FixedClock, tmp_path: Path
) -> None:
    """The hierarchy's upkeep works for SM2 CAs too: re-certification under the same key (policies changed)
    and the delegated OCSP signers' rotation at CRL publication."""
    root_key = Sm2PublicKey.from_spki(certs.subject_public_key_info(sm2.authority.get("root").certificate))
    before = {slug: sm2.authority.get(slug).certificate for slug in ("test", "formal", "ocsp-formal")}
    policies = sm2.ctx.policies
    kinds = {k: replace(v, policy_oid=f"{v.policy_oid}.9") for k, v in policies.profiles.kinds.items()}
    changed = Service(
        engine,
        policies=replace(policies, profiles=replace(policies.profiles, kinds=kinds)),
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE),
        audit_seal=fixed_seal(tmp_path),
    )
    assert sorted(changed.authority.recertify_issuing()) == ["formal", "test"]
    for slug in ("test", "formal"):
        new = changed.authority.get(slug).certificate
        assert certs.subject_public_key_info(new) == certs.subject_public_key_info(before[slug])
        assert certs.policy_oids_of(new) == {kinds[slug].policy_oid}
        assert root_key.verifies(new.signature, new.tbs_certificate_bytes)

    clock.advance(timedelta(days=340))  # inside the signers' 30-day rotation window
    changed.crl.publish()
    signer = changed.authority.get("ocsp-formal")
    assert (
        signer.record.key_algorithm == "sm2"
        and signer.record.serial != f"{before['ocsp-formal'].serial_number:X}"
    )
    formal_key = Sm2PublicKey.from_spki(
        certs.subject_public_key_info(changed.authority.get("formal").certificate)
    )
    assert formal_key.verifies(signer.certificate.signature, signer.certificate.tbs_certificate_bytes)


def test_a_usb_key_issuance_for_an_sm2_kind_is_refused_before_the_key_is_touched(
    sm2: Service, people: dict[str, Actor]
) -> None:
    rid = approved(sm2, people, access_type="formal", usbkey_model="SoftHSM2")
    with pytest.raises(IssuanceError, match="issued by an SM2 CA") as refused:
        sm2.token_handshake.begin(rid, actor=people["distributor"])
    assert "--csr" in refused.value.message and "SM2" in refused.value.message_zh
    assert sm2.requests.get(rid).state is RequestState.APPROVED
