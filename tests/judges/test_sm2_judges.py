"""Independent judges of everything an SM2 home signs: the system OpenSSL 3.0, the pure-Python gmssl package
(a second SM2 implementation that pkictl does not sign with) and pkilint.

OpenSSL 3.0's limits shape the checks (shared/REFERENCE.md): `openssl verify -vfyopt distid:…` applies the
signer ID to the leaf only, so every certificate is verified against its issuer alone (-partial_chain), and
the root's self-signature, CRLs and OCSP responses (which `openssl crl -verify` and `openssl ocsp` check
with the empty ID) by `openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678` over
their signed bytes. Each check also runs without the signer ID and must fail there: the judge sees the ID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy.engine import Engine

from pki.ca import certs
from pki.clock import FixedClock
from pki.services import Actor, Service
from tests.judges.test_pkilint import lint_cert, lint_chain, lint_crl, lint_ocsp
from tests.judges.tools import AT_T0, Arg, Outcome, assert_clean, run, run_all, write_der, write_pem
from tests.support import sm2 as gm
from tests.support.pki import approved
from web import create_app

AT = AT_T0 + 3600
# (issuer, subject) for every link of the hierarchy below the root; "ee-KIND" are end-entity certificates.
LINKS = [
    ("root", "test"),
    ("root", "formal"),
    ("root", "ocsp-root"),
    ("test", "ocsp-test"),
    ("formal", "ocsp-formal"),
    ("test", "ee-test"),
    ("formal", "ee-formal"),
]


@dataclass(frozen=True)
class Signed:
    """One signature to judge: what was signed, the signature, and the certificate whose key made it."""

    name: str
    signed: bytes
    signature: bytes
    signer: x509.Certificate


@dataclass
class Sm2Home:
    dir: Path
    service: Service
    certs: dict[str, x509.Certificate]  # CA slugs and ee-test, ee-formal
    crls: dict[str, bytes]  # by CA slug
    ocsp: dict[str, bytes]  # good, revoked (formal responder), root (the root's responder on the formal CA)

    def pem(self, name: str) -> Path:
        return write_pem(self.dir / f"{name}.pem", self.certs[name])

    def signatures(self) -> list[Signed]:
        out = [
            Signed(
                "root",
                self.certs["root"].tbs_certificate_bytes,
                self.certs["root"].signature,
                self.certs["root"],
            )
        ]
        out += [
            Signed(subject, self.certs[subject].tbs_certificate_bytes, self.certs[subject].signature, self.certs[issuer])
            for issuer, subject in LINKS
        ]  # fmt: skip
        for slug, der in self.crls.items():
            crl = x509.load_der_x509_crl(der)
            out.append(Signed(f"{slug}.crl", crl.tbs_certlist_bytes, crl.signature, self.certs[slug]))
        for name, der in self.ocsp.items():
            response = ocsp.load_der_ocsp_response(der)
            [signer] = response.certificates
            out.append(Signed(f"response-{name}", response.tbs_response_bytes, response.signature, signer))
        return out


def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return (
        builder.add_extension(x509.OCSPNonce(b"sm2-judges-nonce"), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )


@pytest.fixture
def home(engine: Engine, clock: FixedClock, tmp_path: Path, people: dict[str, Actor]) -> Sm2Home:
    """An SM2 home at T0: both kinds issued from OpenSSL 3 CSRs, the formal one revoked, every CRL published,
    OCSP answers fetched over the web app's /ocsp endpoints (good before the revocation, revoked after)."""
    service = gm.sm2_service(engine, clock, tmp_path)
    found = {r.slug: x509.load_der_x509_certificate(r.certificate_der) for r in service.authority.all()}
    for kind in ("test", "formal"):
        row = service.issuance.issue_from_csr(
            approved(service, people, access_type=kind),
            gm.openssl_csr(tmp_path, name=kind),
            actor=people["distributor"],
        )
        found[f"ee-{kind}"] = x509.load_der_x509_certificate(row.der)
    client = create_app(service, {"TESTING": True}).test_client()

    def ask(path: str, cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
        answer = client.post(path, data=_ocsp_request(cert, issuer), content_type="application/ocsp-request")
        assert answer.status_code == 200
        return answer.get_data()

    good = ask("/ocsp/formal", found["ee-formal"], found["formal"])
    service.revocation.revoke(f"{found['ee-formal'].serial_number:X}", "keyCompromise", actor=people["ops"])
    crls = {p.ca: p.record.der for p in service.crl.publish(actor=people["ops"])}
    responses = {
        "good": good,
        "revoked": ask("/ocsp/formal", found["ee-formal"], found["formal"]),
        "root": ask("/ocsp/root", found["formal"], found["root"]),
    }
    return Sm2Home(tmp_path, service, found, crls, responses)


def _verify(home: Sm2Home, issuer: str, subject: str, *, distid: bool = True) -> Outcome:
    vfyopt: list[Arg] = ["-vfyopt", gm.DISTID] if distid else []
    return run(
        ["openssl", "verify", "-attime", AT, *vfyopt, "-partial_chain", "-CAfile", home.pem(issuer), home.pem(subject)]
    )  # fmt: skip


def test_openssl_verifies_every_sm2_certificate_link_by_link(home: Sm2Home) -> None:
    for issuer, subject in LINKS:
        done = _verify(home, issuer, subject)
        assert done.returncode == 0 and ": OK" in done.stdout, done.explain()
    # Control: with OpenSSL 3.0's own default, the empty signer ID, our signatures do not verify.
    control = _verify(home, "formal", "ee-formal", distid=False)
    assert control.returncode != 0 and "signature failure" in control.stdout + control.stderr, (
        control.explain()
    )


def _pkeyutl(home: Sm2Home, item: Signed, *, distid: bool = True) -> Outcome:
    stem = home.dir / item.name
    public = write_der(stem.with_suffix(".pub.der"), certs.subject_public_key_info(item.signer))
    signed = write_der(stem.with_suffix(".tbs"), item.signed)
    signature = write_der(stem.with_suffix(".sig"), item.signature)
    pkeyopt: list[Arg] = ["-pkeyopt", gm.DISTID] if distid else []
    return run(
        ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", *pkeyopt, "-pubin", "-keyform", "DER",
         "-inkey", public, "-in", signed, "-sigfile", signature]
    )  # fmt: skip


def test_openssl_pkeyutl_verifies_the_root_the_crls_and_the_ocsp_responses(home: Sm2Home) -> None:
    items = [
        s
        for s in home.signatures()
        if s.name == "root" or s.name.endswith(".crl") or s.name.startswith("response-")
    ]
    assert {s.name for s in items} == {
        "root", "root.crl", "test.crl", "formal.crl", "response-good", "response-revoked", "response-root"
    }  # fmt: skip
    for item in items:
        done = _pkeyutl(home, item)
        assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.explain()
        control = _pkeyutl(home, item, distid=False)
        assert control.returncode != 0, control.explain()


def test_openssl_reads_the_revocation_in_the_sm2_crl_and_ocsp_response(home: Sm2Home) -> None:
    serial = f"{home.certs['ee-formal'].serial_number:X}"
    crl = run(["openssl", "crl", "-inform", "DER", "-in", write_der(home.dir / "formal.crl", home.crls["formal"]),
               "-noout", "-text"])  # fmt: skip
    assert crl.returncode == 0, crl.explain()
    # openssl prints whole octets: a leading zero when the hex has an odd number of digits
    assert re.search(rf"Serial Number: 0?{serial}\n", crl.stdout) and "Key Compromise" in crl.stdout, (
        crl.explain()
    )
    assert "Signature Algorithm: SM2-with-SM3" in crl.stdout, crl.explain()
    for name, status in (("good", "good"), ("revoked", "revoked"), ("root", "good")):
        shown = run(["openssl", "ocsp", "-respin", write_der(home.dir / f"{name}.ocsp", home.ocsp[name]),
                     "-resp_text", "-noverify"])  # fmt: skip
        assert shown.returncode == 0, shown.explain()
        assert f"Cert Status: {status}" in shown.stdout and "SM2-with-SM3" in shown.stdout, shown.explain()
        assert "OCSP Nonce" in shown.stdout, shown.explain()


def test_gmssl_verifies_every_signature(home: Sm2Home) -> None:
    items = home.signatures()
    assert len(items) == 1 + len(LINKS) + 3 + 3
    for item in items:
        assert gm.gmssl_verifies(item.signer, item.signature, item.signed), item.name
    # Control: the second implementation refuses a signature over other bytes.
    first = items[0]
    assert not gm.gmssl_verifies(first.signer, first.signature, first.signed + b"\x00")


def test_pkilint_structure_checks_pass(home: Sm2Home) -> None:
    """pkilint cannot verify SM3withSM2 (a NOTICE, below the WARNING threshold): everything else applies."""
    commands = [lint_cert(home.pem(name)) for name in home.certs]
    commands += [lint_chain(home.pem(issuer), home.pem(subject)) for issuer, subject in LINKS]
    commands += [lint_crl(write_der(home.dir / f"{slug}.crl", der)) for slug, der in home.crls.items()]
    commands += [lint_ocsp(write_der(home.dir / f"{name}.ocsp", der)) for name, der in home.ocsp.items()]
    assert_clean(run_all(commands))
