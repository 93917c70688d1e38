"""openssl judges our chain, CRLs and OCSP responder as a relying party would: real processes, and OCSP over
real HTTP against the web app served by waitress.

Everything is issued at the fixed clock T0 (2020-10-20); openssl checks times against the real clock, so
each call passes -attime (one hour after T0) and, for OCSP, -validity_period wide enough to reach back to
the response's thisUpdate/nextUpdate (openssl checks those against the real clock even with -attime).
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from waitress.server import create_server

from pki.clock import FixedClock
from pki.enums import RevocationReason
from pki.services import Actor, Service
from tests.conftest import T0
from tests.judges.tools import (
    AT_T0,
    Arg,
    Outcome,
    ca_certs,
    issue,
    ocsp_request,
    ocsp_request_for_serial,
    run,
    serial_hex,
    write_der,
    write_pem,
)
from web import create_app

AT = AT_T0 + 3600  # one hour after issuance: inside every validity and every CRL/OCSP window
NEVER_ISSUED = 0x0BAD_5E71_A100_0000_0000_0000_0000_0001


@dataclass(frozen=True)
class Web:
    base: str

    def get(self, path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:  # noqa: S310 (our own http URL)
                return r.status, r.headers.get_content_type(), r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers.get_content_type(), e.read()

    def post(
        self, path: str, body: bytes, content_type: str = "application/ocsp-request"
    ) -> tuple[int, str, bytes]:
        req = urllib.request.Request(  # noqa: S310 (our own http URL)
            self.base + path, data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (our own http URL)
            return r.status, r.headers.get_content_type(), r.read()


@pytest.fixture
def web(ca_service: Service) -> Iterator[Web]:
    """The web app on 127.0.0.1, a free port, served by waitress from a background thread."""
    server: Any = create_server(  # a TcpWSGIServer; types-waitress lacks effective_port and trigger's type
        create_app(ca_service), host="127.0.0.1", port=0, threads=2, asyncore_loop_timeout=0.05
    )
    thread = threading.Thread(target=server.run, name="waitress-judges", daemon=True)
    thread.start()
    try:
        yield Web(f"http://127.0.0.1:{server.effective_port}")
    finally:
        # Worker threads finish first: a client may hold its whole response while the worker still wakes the
        # event loop, and that wake-up must not hit a closed trigger. server.close() then runs inside the
        # loop's own thread (a trigger thunk), never under its select(); the loop closes the remaining
        # channels and returns once its map is empty.
        server.task_dispatcher.shutdown()
        with contextlib.suppress(OSError):  # EBADF: the server closed itself and its trigger already
            server.trigger.pull_trigger(server.close)
        thread.join(timeout=10)
        assert not thread.is_alive(), "waitress did not stop"


@dataclass
class Files:
    """The relying party's files: root, issuing CA, chain (root + issuing), one end-entity certificate."""

    dir: Path
    root: Path
    issuing: Path
    chain: Path
    ee: Path
    cert: x509.Certificate

    @classmethod
    def write(cls, directory: Path, service: Service, cert: x509.Certificate) -> Files:
        cas = ca_certs(service)
        return cls(
            dir=directory,
            root=write_pem(directory / "root.pem", cas["root"]),
            issuing=write_pem(directory / "issuing.pem", cas["test"]),
            chain=write_pem(directory / "chain.pem", cas["root"], cas["test"]),
            ee=write_pem(directory / "ee.pem", cert),
            cert=cert,
        )

    def crl_pem(self, der: bytes, name: str = "crl") -> Path:
        """DER from the service -> PEM, converted by openssl itself."""
        src = write_der(self.dir / f"{name}.der", der)
        out = self.dir / f"{name}.pem"
        done = run(["openssl", "crl", "-inform", "DER", "-in", src, "-outform", "PEM", "-out", out])
        assert done.returncode == 0, done.explain()
        return out


@pytest.fixture
def files(tmp_path: Path, ca_service: Service, people: dict[str, Actor]) -> Files:
    """A test-kind RSA end-entity certificate issued at T0, with its chain."""
    return Files.write(tmp_path, ca_service, issue(ca_service, people, alg="rsa-2048", kind="test"))


# -- openssl verify with CRLs ------------------------------------------------------------------------------


def verify(files: Files, crl: Path) -> Outcome:
    return run(
        [
            "openssl",
            "verify",
            "-attime",
            AT,
            "-CAfile",
            files.chain,
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-crl_check",
            "-CRLfile",
            crl,
            files.ee,
        ]
    )


def test_openssl_verify_accepts_a_valid_certificate_and_rejects_it_once_revoked(
    files: Files, ca_service: Service, people: dict[str, Actor]
) -> None:
    first = next(p.record for p in ca_service.crl.publish() if p.ca == "test")
    ok = verify(files, files.crl_pem(first.der, "crl-1"))
    assert ok.returncode == 0 and f"{files.ee}: OK" in ok.stdout, ok.explain()

    ca_service.revocation.revoke(serial_hex(files.cert), "keyCompromise", actor=people["ops"])
    second = next(p.record for p in ca_service.crl.publish() if p.ca == "test")
    assert second.number == first.number + 1
    revoked = verify(files, files.crl_pem(second.der, "crl-2"))
    assert revoked.returncode != 0, revoked.explain()
    assert "certificate revoked" in revoked.stdout + revoked.stderr, revoked.explain()

    # The CRL itself: signature verified by openssl, entry and reason as openssl reads them.
    shown = run(["openssl", "crl", "-in", files.dir / "crl-2.pem", "-CAfile", files.chain, "-text", "-noout"])
    assert shown.returncode == 0 and "verify OK" in shown.stderr + shown.stdout, shown.explain()
    listed = {int(h, 16) for h in re.findall(r"Serial Number: ([0-9A-F]+)", shown.stdout)}
    assert listed == {files.cert.serial_number}, shown.explain()
    assert "Key Compromise" in shown.stdout, shown.explain()
    assert re.search(r"X509v3 CRL Number:\s*\n\s*2\b", shown.stdout), shown.explain()


# -- OCSP over HTTP --------------------------------------------------------------------------------------


def openssl_ocsp(
    files: Files,
    web: Web,
    *args: Arg,
    path: str = "/ocsp/test",
    at: int = AT,
) -> Outcome:
    # -validity_period: thisUpdate/nextUpdate follow the service clock, which openssl compares with the real
    # clock even under -attime; the slack reaches back to T0 and a week before it.
    slack = int(time.time()) - AT_T0 + 7 * 86400
    return run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            files.issuing,
            "-url",
            web.base + path,
            "-CAfile",
            files.root,
            "-attime",
            at,
            "-validity_period",
            slack,
            "-resp_text",
            *args,
        ]
    )


def nonces(request_der: Path, response_der: Path) -> tuple[bytes | None, bytes | None]:
    req = ocsp.load_der_ocsp_request(request_der.read_bytes())
    resp = ocsp.load_der_ocsp_response(response_der.read_bytes())

    def nonce(exts: x509.Extensions) -> bytes | None:
        try:
            return exts.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None

    return nonce(req.extensions), nonce(resp.extensions)


def test_openssl_ocsp_good_then_revoked_at_once(
    files: Files, web: Web, ca_service: Service, people: dict[str, Actor]
) -> None:
    req, resp = files.dir / "req.der", files.dir / "resp.der"
    good = openssl_ocsp(files, web, "-cert", files.ee, "-reqout", req, "-respout", resp)
    text = good.stdout + good.stderr
    assert good.returncode == 0, good.explain()
    assert "Response verify OK" in text, good.explain()
    assert "Cert Status: good" in text and f"{files.ee}: good" in text, good.explain()
    assert "OCSP Nonce" in text and "WARNING" not in text, good.explain()
    sent, echoed = nonces(req, resp)
    assert sent is not None and echoed == sent

    ca_service.revocation.revoke(serial_hex(files.cert), "keyCompromise", actor=people["ops"])
    revoked = openssl_ocsp(files, web, "-cert", files.ee)
    text = revoked.stdout + revoked.stderr
    assert revoked.returncode == 0 and "Response verify OK" in text, revoked.explain()
    assert "Cert Status: revoked" in text and f"{files.ee}: revoked" in text, revoked.explain()
    assert re.search(r"Revocation Reason: keyCompromise \(0x1\)", text), revoked.explain()
    assert "Revocation Time: Oct 20 02:00:00 2020 GMT" in text, revoked.explain()


def test_openssl_ocsp_still_verifies_after_the_first_year(
    tmp_path: Path, web: Web, ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    clock.advance(timedelta(days=400))
    ca_service.crl.publish()  # the scheduled publication rotates the delegated signers
    files = Files.write(tmp_path, ca_service, issue(ca_service, people, kind="test"))
    signer = ca_certs(ca_service)["ocsp-test"]
    assert signer.not_valid_before_utc == clock.now().replace(microsecond=0)  # rotated on day 400
    assert clock.now() < files.cert.not_valid_after_utc
    done = openssl_ocsp(files, web, "-cert", files.ee, at=int(clock.now().timestamp()) + 3600)
    text = done.stdout + done.stderr
    assert "Cert Status: good" in text, done.explain()
    assert done.returncode == 0 and "Response verify OK" in text, done.explain()


def test_openssl_ocsp_unknown_serial(files: Files, web: Web) -> None:
    unknown = openssl_ocsp(files, web, "-serial", f"0x{NEVER_ISSUED:X}")
    text = unknown.stdout + unknown.stderr
    assert unknown.returncode == 0 and "Response verify OK" in text, unknown.explain()
    assert "Cert Status: unknown" in text and f"0x{NEVER_ISSUED:X}: unknown" in text, unknown.explain()


def test_openssl_ocsp_without_nonce(files: Files, web: Web) -> None:
    req, resp = files.dir / "req.der", files.dir / "resp.der"
    done = openssl_ocsp(files, web, "-cert", files.ee, "-no_nonce", "-reqout", req, "-respout", resp)
    text = done.stdout + done.stderr
    assert done.returncode == 0 and "Response verify OK" in text, done.explain()
    assert "Cert Status: good" in text and "OCSP Nonce" not in text, done.explain()
    assert nonces(req, resp) == (None, None)


def test_ocsp_get_answers_like_post(
    files: Files, web: Web, ca_service: Service, people: dict[str, Actor]
) -> None:
    """RFC 6960 A.1: GET {url}/{url-encoding of the base64 DER request}; openssl writes the request."""
    ca_service.revocation.revoke(serial_hex(files.cert), "superseded", actor=people["ops"])
    req = files.dir / "req.der"
    made = run(["openssl", "ocsp", "-issuer", files.issuing, "-cert", files.ee, "-reqout", req])
    assert made.returncode == 0, made.explain()
    der = req.read_bytes()
    encoded = urllib.parse.quote(base64.b64encode(der).decode("ascii"), safe="")

    status, content_type, body = web.get(f"/ocsp/test/{encoded}")
    assert (status, content_type) == (200, "application/ocsp-response")
    got = ocsp.load_der_ocsp_response(body)
    assert got.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert got.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert got.revocation_reason is x509.ReasonFlags.superseded
    assert got.serial_number == files.cert.serial_number
    posted = ocsp.load_der_ocsp_response(web.post("/ocsp/test", der)[2])
    assert (posted.certificate_status, posted.revocation_reason) == (
        got.certificate_status,
        got.revocation_reason,
    )
    sent = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce).value
    assert got.extensions.get_extension_for_class(x509.OCSPNonce).value == sent


def _awkward_request(issuer: x509.Certificate, cert: x509.Certificate) -> bytes:
    """A request whose base64 has '/' and '+' (fixed nonce, found deterministically): the characters a GET
    URL must percent-encode and a server must not mistake for path separators."""
    for i in range(256):
        der = ocsp_request(cert, issuer, nonce=bytes([i, 255 - i]) * 8)
        text = base64.b64encode(der).decode("ascii")
        if "/" in text and "+" in text:
            return der
    raise AssertionError("no nonce gives both '/' and '+'")


@pytest.mark.parametrize("prefix", ["/ocsp/test/", "/ocsp/"])
@pytest.mark.parametrize("quoted", [True, False], ids=["url-encoded", "raw"])
def test_ocsp_get_with_slashes_and_pluses_in_the_base64(
    files: Files, web: Web, ca_service: Service, prefix: str, quoted: bool
) -> None:
    der = _awkward_request(ca_certs(ca_service)["test"], files.cert)
    text = base64.b64encode(der).decode("ascii")
    status, _, body = web.get(prefix + (urllib.parse.quote(text, safe="") if quoted else text))
    assert status == 200
    got = ocsp.load_der_ocsp_response(body)
    assert got.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert got.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert got.serial_number == files.cert.serial_number


def test_openssl_ocsp_with_a_sha256_cert_id(files: Files, web: Web) -> None:
    done = openssl_ocsp(files, web, "-sha256", "-cert", files.ee)
    text = done.stdout + done.stderr
    assert done.returncode == 0 and "Response verify OK" in text, done.explain()
    assert "Hash Algorithm: sha256" in text and "Cert Status: good" in text, done.explain()


def test_malformed_ocsp_request_gets_an_unsigned_malformed_request(web: Web) -> None:
    status, content_type, body = web.post("/ocsp", b"this is not DER")
    assert (status, content_type) == (200, "application/ocsp-response")
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert body == bytes.fromhex("30030a0101")  # OCSPResponse { responseStatus 1 }, no responseBytes


def _foreign_ca(tmp_path: Path) -> tuple[Path, x509.Certificate]:
    """A self-signed CA nobody here knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Somebody else's CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0.replace(year=2030))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return write_pem(tmp_path / "foreign-ca.pem", ca), ca


def test_request_for_an_unknown_issuer_is_unauthorized(files: Files, web: Web) -> None:
    foreign_pem, foreign = _foreign_ca(files.dir)
    done = run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            foreign_pem,
            "-serial",
            "0x01",
            "-url",
            web.base + "/ocsp/test",
            "-resp_text",
        ]
    )
    assert "Responder Error: unauthorized (6)" in done.stdout + done.stderr, done.explain()

    body = ocsp_request_for_serial(1, foreign)
    response = ocsp.load_der_ocsp_response(web.post("/ocsp/test", body)[2])
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


# -- CRL and CA certificate downloads ---------------------------------------------------------------------


def test_crl_and_ca_certificate_downloads(files: Files, web: Web, ca_service: Service) -> None:
    status, _, _ = web.get("/crl/test.crl")
    assert status == 404  # nothing published yet

    ca_service.crl.publish()
    ca_service.crl.publish()
    newest = ca_service.crl.latest("test")
    assert newest.number == 2
    status, content_type, body = web.get("/crl/test.crl")
    assert (status, content_type) == (200, "application/pkix-crl")
    assert body == newest.der
    served = write_der(files.dir / "served.crl", body)
    checked = run(["openssl", "crl", "-inform", "DER", "-in", served, "-CAfile", files.chain, "-noout"])
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr, checked.explain()

    status, content_type, body = web.get("/ca/root.cer")
    assert (status, content_type) == (200, "application/pkix-cert")
    assert body == ca_certs(ca_service)["root"].public_bytes(Encoding.DER)
    assert x509.load_der_x509_certificate(body) == x509.load_pem_x509_certificate(files.root.read_bytes())


@pytest.mark.parametrize("reason", [RevocationReason.UNSPECIFIED, RevocationReason.CESSATION_OF_OPERATION])
def test_openssl_reads_our_revocation_reasons(
    files: Files, web: Web, ca_service: Service, people: dict[str, Actor], reason: RevocationReason
) -> None:
    """CRL and OCSP agree, in openssl's reading, on the reason (none written for unspecified)."""
    ca_service.revocation.revoke(serial_hex(files.cert), reason, actor=people["ops"])
    record = next(p.record for p in ca_service.crl.publish() if p.ca == "test")
    crl = run(["openssl", "crl", "-in", files.crl_pem(record.der), "-text", "-noout"])
    answer = openssl_ocsp(files, web, "-cert", files.ee)
    assert answer.returncode == 0 and "Cert Status: revoked" in answer.stdout, answer.explain()
    if reason is RevocationReason.UNSPECIFIED:
        assert "CRL Reason Code" not in crl.stdout, crl.explain()
    else:
        assert "Cessation Of Operation" in crl.stdout, crl.explain()
        assert "Revocation Reason: cessationOfOperation (0x5)" in answer.stdout, answer.explain()
