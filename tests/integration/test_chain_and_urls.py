"""The CA chain as relying parties need it (issue 14), on SQLite and PostgreSQL: issuing CA certificates
assert the policies of the kinds they issue and point at the root's CRL, the root asserts none; the home's
public URL goes into certificates issued after it is set, and only those; a home made before the policies
existed is re-certified under the same keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlmodel import Session, select

from pki.ca.keys import signature_hash
from pki.errors import ValidationError
from pki.models import CertificateAuthority
from pki.services import Actor, Service
from tests.judges.tools import AT_T0, issue, ocsp_request, ocsp_request_for_serial

TEST_OID, FORMAL_OID = "1.3.6.1.4.1.32473.1.1", "1.3.6.1.4.1.32473.1.2"


def ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def policies(cert: x509.Certificate) -> set[str]:
    found = ext(cert, x509.CertificatePolicies)
    return {p.policy_identifier.dotted_string for p in found} if found else set()  # type: ignore[attr-defined]


def urls(cert: x509.Certificate) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"crl": [], "ocsp": [], "ca_issuers": []}
    cdp = ext(cert, x509.CRLDistributionPoints)
    for dp in cdp or []:  # type: ignore[attr-defined]
        out["crl"] += [n.value for n in dp.full_name]
    aia = ext(cert, x509.AuthorityInformationAccess)
    for d in aia or []:  # type: ignore[attr-defined]
        key = "ocsp" if d.access_method == AuthorityInformationAccessOID.OCSP else "ca_issuers"
        out[key].append(d.access_location.value)
    return out


def cert_of(service: Service, slug: str) -> x509.Certificate:
    return service.authority.get(slug).certificate


def test_issuing_cas_assert_their_kinds_policies_and_the_root_none(ca_service: Service) -> None:
    assert policies(cert_of(ca_service, "root")) == set()
    assert urls(cert_of(ca_service, "root")) == {"crl": [], "ocsp": [], "ca_issuers": []}
    assert policies(cert_of(ca_service, "test")) == {TEST_OID}
    assert policies(cert_of(ca_service, "formal")) == {FORMAL_OID}
    for slug in ("test", "formal"):  # no public URL set: the ca.toml defaults
        assert urls(cert_of(ca_service, slug)) == {
            "crl": ["http://127.0.0.1:8000/crl/root.crl"],
            "ocsp": ["http://127.0.0.1:8000/ocsp/root"],
            "ca_issuers": ["http://127.0.0.1:8000/ca/root.cer"],
        }


def test_the_public_url_goes_into_certificates_issued_after_it(
    service: Service, people: dict[str, Actor]
) -> None:
    assert service.settings.public_url() is None
    assert service.settings.set_public_url(" https://pki.example.gov.cn/ ", actor="admin") == (
        "https://pki.example.gov.cn"
    )
    service.authority.ensure_hierarchy()
    assert urls(cert_of(service, "formal"))["crl"] == ["https://pki.example.gov.cn/crl/root.crl"]
    first = issue(service, people, kind="test", index=70)
    assert urls(first) == {
        "crl": ["https://pki.example.gov.cn/crl/test.crl"],
        "ocsp": ["https://pki.example.gov.cn/ocsp/test"],
        "ca_issuers": ["https://pki.example.gov.cn/ca/test.cer"],
    }
    service.settings.set_public_url("http://127.0.0.1:9000", actor="admin")
    second = issue(service, people, kind="formal", index=71)
    assert urls(second)["ocsp"] == ["http://127.0.0.1:9000/ocsp/formal"]
    stored = service.certificates.get(f"{first.serial_number:X}")
    assert stored.der == first.public_bytes(Encoding.DER)  # issued before the change: untouched
    changes = [r for r in service.audit.recent(limit=50) if r.action == "home.public_url"]
    assert [r.actor for r in changes] == ["admin", "admin"]
    assert sorted((json.loads(r.details)["old"] or "", json.loads(r.details)["new"]) for r in changes) == [
        ("", "https://pki.example.gov.cn"),
        ("https://pki.example.gov.cn", "http://127.0.0.1:9000"),
    ]


@pytest.mark.parametrize(
    "bad",
    ["ftp://pki.example", "http://", "pki.example.gov.cn", "http://h/?q=1", "http://h/#x", "http://u:p@h",
     "http://h:99999", "http://h:0", "javascript:alert(1)", "http://h/a b", "http://h/" + "x" * 1900],
)  # fmt: skip
def test_a_bad_public_url_is_refused_by_name(service: Service, bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        service.settings.set_public_url(bad)
    assert info.value.errors[0].field == "public_url"
    assert service.settings.public_url() is None


def _legacy_issuing(service: Service, slug: str) -> None:
    """Replace an issuing CA certificate by what homes made before issue 14 had: same key, subject and
    validity, no certificatePolicies, no CDP, no AIA."""
    root = service.authority.get("root")
    root_key = service.authority.key_for(root)
    now = service.authority.get(slug).certificate
    ski = ext(now, x509.SubjectKeyIdentifier)
    old = (
        x509.CertificateBuilder()
        .subject_name(now.subject)
        .issuer_name(root.certificate.subject)
        .public_key(now.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.not_valid_before_utc)
        .not_valid_after(now.not_valid_after_utc)
        .add_extension(ski, critical=False)  # type: ignore[arg-type]
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ext(now, x509.KeyUsage), critical=True)  # type: ignore[arg-type]
        .add_extension(ext(now, x509.AuthorityKeyIdentifier), critical=False)  # type: ignore[arg-type]
        .sign(root_key, signature_hash(root_key))
    )
    with Session(service.ctx.engine) as s:
        record = s.exec(select(CertificateAuthority).where(CertificateAuthority.slug == slug)).one()
        record.certificate_der, record.serial = old.public_bytes(Encoding.DER), f"{old.serial_number:X}"
        s.add(record)
        s.commit()
    service.authority.refresh()


def _verify(
    tmp: Path, root: x509.Certificate, issuing: x509.Certificate, leaf: x509.Certificate, oid: str
) -> int:
    for name, c in (("root", root), ("ca", issuing), ("leaf", leaf)):
        (tmp / f"{name}.pem").write_bytes(c.public_bytes(Encoding.PEM))
    return subprocess.run(
        ["openssl", "verify", "-attime", str(AT_T0 + 3600), "-CAfile", tmp / "root.pem", "-untrusted",
         tmp / "ca.pem", "-policy", oid, "-explicit_policy", tmp / "leaf.pem"],
        capture_output=True, check=False,
    ).returncode  # fmt: skip


def test_issuing_cas_without_policies_are_recertified_under_the_same_keys(
    ca_service: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    leaf = issue(ca_service, people, kind="test", index=72)  # issued before the upgrade
    for slug in ("test", "formal"):
        _legacy_issuing(ca_service, slug)
    legacy = {slug: cert_of(ca_service, slug) for slug in ("test", "formal")}
    root = cert_of(ca_service, "root")
    assert _verify(tmp_path, root, legacy["test"], leaf, TEST_OID) != 0  # what relying parties saw

    assert ca_service.authority.recertify_issuing(actor="init") == ["test", "formal"]
    assert ca_service.authority.recertify_issuing(actor="init") == []  # once
    for slug, oid in (("test", TEST_OID), ("formal", FORMAL_OID)):
        new = cert_of(ca_service, slug)
        assert policies(new) == {oid} and urls(new)["crl"] == ["http://127.0.0.1:8000/crl/root.crl"]
        assert new.serial_number != legacy[slug].serial_number
        assert new.subject == legacy[slug].subject and new.public_key() == legacy[slug].public_key()
        assert ext(new, x509.SubjectKeyIdentifier) == ext(legacy[slug], x509.SubjectKeyIdentifier)
        assert (new.not_valid_before_utc, new.not_valid_after_utc) == (
            legacy[slug].not_valid_before_utc,
            legacy[slug].not_valid_after_utc,
        )
    assert _verify(tmp_path, root, cert_of(ca_service, "test"), leaf, TEST_OID) == 0  # the old leaf too
    assert _verify(tmp_path, root, cert_of(ca_service, "test"), leaf, FORMAL_OID) != 0
    record = next(r for r in ca_service.audit.recent(limit=10) if r.action == "ca.recertify")
    assert f"{legacy['formal'].serial_number:X}" in record.details or f"{legacy['test'].serial_number:X}" in (
        record.details
    )


def test_the_roots_responder_answers_for_the_issuing_cas(ca_service: Service) -> None:
    """nginx `ssl_ocsp on` asks about every certificate of the chain: the issuing CAs' status comes from the
    root's delegated signer (the root key stays offline)."""
    root, signer = cert_of(ca_service, "root"), cert_of(ca_service, "ocsp-root")
    assert ext(signer, x509.ExtendedKeyUsage) == x509.ExtendedKeyUsage(
        [x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]
    )
    signer.verify_directly_issued_by(root)
    for slug in ("test", "formal"):
        answer = ocsp.load_der_ocsp_response(
            ca_service.ocsp.respond(ocsp_request(cert_of(ca_service, slug), root))
        )
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD, slug
        assert answer.certificates == [signer]
    stranger = ocsp.load_der_ocsp_response(ca_service.ocsp.respond(ocsp_request_for_serial(12345, root)))
    assert stranger.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_a_home_without_the_roots_responder_gets_one_from_init(ca_service: Service) -> None:
    with Session(ca_service.ctx.engine) as s:
        s.delete(s.exec(select(CertificateAuthority).where(CertificateAuthority.slug == "ocsp-root")).one())
        s.commit()
    ca_service.authority.refresh()
    slugs = [r.slug for r in ca_service.authority.ensure_hierarchy(actor="init")]
    assert slugs.count("ocsp-root") == 1
    assert [r.slug for r in ca_service.authority.ensure_hierarchy(actor="init")] == slugs  # once
    ca_service.ocsp.warm()
    root = cert_of(ca_service, "root")
    answer = ocsp.load_der_ocsp_response(
        ca_service.ocsp.respond(ocsp_request(cert_of(ca_service, "test"), root))
    )
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_openssl_checks_every_crl_of_the_chain_with_the_roots(
    ca_service: Service, people: dict[str, Actor], tmp_path: Path
) -> None:
    """`-crl_check_all` (what nginx's ssl_crl does) needs the root's CRL too: with the published bundle a
    valid certificate passes and a revoked one is refused; without the root's CRL every one is refused."""
    from pki.services.crl_publisher import write_files

    good, bad = (
        issue(ca_service, people, kind="formal", index=73),
        issue(ca_service, people, kind="test", index=74),
    )
    ca_service.revocation.revoke(f"{bad.serial_number:X}", "keyCompromise", actor=people["ops"])
    write_files(tmp_path, ca_service.crl.publish())
    (tmp_path / "root.pem").write_bytes(cert_of(ca_service, "root").public_bytes(Encoding.PEM))
    (tmp_path / "cas.pem").write_bytes(
        b"".join(cert_of(ca_service, s).public_bytes(Encoding.PEM) for s in ("test", "formal"))
    )
    without_root = b"".join((tmp_path / f"{s}.crl.pem").read_bytes() for s in ("test", "formal"))
    (tmp_path / "no-root.pem").write_bytes(without_root)

    def verify(cert: x509.Certificate, crls: str) -> str:
        (tmp_path / "leaf.pem").write_bytes(cert.public_bytes(Encoding.PEM))
        done = subprocess.run(
            ["openssl", "verify", "-attime", str(AT_T0 + 3600), "-CAfile", tmp_path / "root.pem", "-untrusted",
             tmp_path / "cas.pem", "-crl_check_all", "-CRLfile", tmp_path / crls, tmp_path / "leaf.pem"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return "OK" if done.returncode == 0 else done.stdout + done.stderr

    assert verify(good, "crls.pem") == "OK"
    assert "certificate revoked" in verify(bad, "crls.pem")
    assert "unable to get certificate CRL" in verify(good, "no-root.pem")
