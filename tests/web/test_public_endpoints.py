"""The public endpoints through Flask's test client: content types, limits, error mapping, headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_der_x509_certificate, ocsp
from flask.testing import FlaskClient

from pki.ca.keystore import FileKeyStore
from pki.services import Actor, Service
from tests.conftest import fixed_seal
from tests.support.pki import approved, csr_for, key
from web import MAX_REQUEST, create_app


@pytest.fixture
def client(ca_service: Service) -> FlaskClient:
    return create_app(ca_service, {"TESTING": True}).test_client()


def _request_der(ca_service: Service, people: dict[str, Actor]) -> bytes:
    row = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 900)), actor=people["distributor"]
    )
    cert = load_der_x509_certificate(row.der)
    issuer = ca_service.authority.get("test").certificate
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )


def test_ocsp_post_answers_and_checks_the_envelope(
    client: FlaskClient, ca_service: Service, people: dict[str, Actor]
) -> None:
    der = _request_der(ca_service, people)
    ok = client.post("/ocsp/test", data=der, content_type="application/ocsp-request")
    assert ok.status_code == 200 and ok.content_type == "application/ocsp-response"
    assert ok.headers["Cache-Control"] == "no-store"
    assert ocsp.load_der_ocsp_response(ok.data).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert client.post("/ocsp", data=der, content_type="text/plain").status_code == 415
    assert client.post("/ocsp", data=b"", content_type="application/ocsp-request").status_code == 400
    too_big = client.post("/ocsp", data=b"0" * (MAX_REQUEST + 1), content_type="application/ocsp-request")
    assert too_big.status_code == 413


def test_crl_and_ca_endpoints(client: FlaskClient, ca_service: Service) -> None:
    missing = client.get("/crl/test.crl")
    assert missing.status_code == 404 and "pkictl" not in missing.get_data(as_text=True)
    published = {p.ca: p.record for p in ca_service.crl.publish()}
    assert sorted(published) == ["formal", "root", "test"]  # the root's ARL too
    for slug, record in published.items():
        got = client.get(f"/crl/{slug}.crl")
        assert got.status_code == 200 and got.content_type == "application/pkix-crl", slug
        assert got.data == record.der, slug
    assert client.get("/crl/ocsp-test.crl").status_code == 404  # a responder issues nothing
    root = client.get("/ca/root.cer")
    assert root.content_type == "application/pkix-cert"
    assert root.data == ca_service.authority.get("root").record.certificate_der
    assert root.headers["X-Content-Type-Options"] == "nosniff" and root.headers["X-Frame-Options"] == "DENY"
    assert client.get("/ca/nothing.cer").status_code == 404


def test_server_faults_are_not_shown_to_clients(engine, clock, tmp_path: Path) -> None:
    """A CA key that cannot be opened is a 503 with a generic body; the detail goes to the log."""
    seal = fixed_seal(tmp_path)
    good = Service(
        engine, clock=clock, keys=FileKeyStore(tmp_path / "ca", lambda: "right-passphrase-1"), audit_seal=seal
    )
    good.authority.ensure_hierarchy()
    broken = Service(
        engine, clock=clock, keys=FileKeyStore(tmp_path / "ca", lambda: "wrong-passphrase-1"), audit_seal=seal
    )
    app = create_app(broken, {"TESTING": True})

    @app.get("/boom")
    def boom() -> str:
        broken.authority.key_for(broken.authority.get("root"))
        return "unreachable"

    response = app.test_client().get("/boom")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert (
        "passphrase" not in body
        and str(tmp_path) not in body
        and "服务暂不可用" in response.json["message_zh"]
    )
