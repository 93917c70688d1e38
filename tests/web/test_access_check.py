"""POST /access-check through Flask's test client and through a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_der_x509_certificate
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from pki.models import Certificate
from pki.services import Actor, Service
from tests.support.data import make_uscc
from tests.support.pki import approved, csr_for, key
from web import create_app
from web.ocsp_http import MAX_REQUEST

CUTOVER = datetime(2020, 11, 14, 16, 0, tzinfo=UTC)
_numbers = iter(range(60000000, 61000000))


def issued(service: Service, people: dict[str, Actor], kind: str) -> Certificate:
    rid = approved(
        service, people, access_type=kind, credential_number=make_uscc("110101", str(next(_numbers)))
    )
    return service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", 700 + next(_numbers) % 100)), actor=people["distributor"]
    )


def pem(cert: Certificate) -> bytes:
    return load_der_x509_certificate(cert.der).public_bytes(Encoding.PEM)


@pytest.fixture
def client(ca_service: Service) -> FlaskClient:
    return create_app(ca_service, {"TESTING": True}).test_client()


@pytest.mark.parametrize(
    ("at", "decision", "warnings"),
    [("2020-11-14T15:59:59Z", "allow", ["no certificate presented"]), ("2020-11-14T16:00:00Z", "deny", [])],
    ids=["15:59:59Z", "16:00:00Z"],
)
def test_no_certificate_at_the_edge(client: FlaskClient, at: str, decision: str, warnings: list[str]) -> None:
    answer = client.post(f"/access-check?at={at}", data=b"", content_type="application/x-pem-file")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert (body["decision"], body["warnings"]) == (decision, warnings)


def test_certificates_by_kind_and_revocation(
    client: FlaskClient, ca_service: Service, people: dict[str, Actor]
) -> None:
    formal, test = issued(ca_service, people, "formal"), issued(ca_service, people, "test")
    at = "2020-11-15T00:00:00%2B08:00"  # '+' must be escaped in a query string
    ok = client.post(f"/access-check?at={at}", data=pem(formal), content_type="application/x-pem-file")
    assert ok.get_json()["decision"] == "allow" and ok.get_json()["kind"] == "formal"
    refused = client.post(f"/access-check?at={at}", data=pem(test)).get_json()
    assert refused["decision"] == "deny"
    assert refused["reasons"] == ["a test certificate is not accepted on the production platform"]
    on_test = client.post(f"/access-check?at={at}&platform=test", data=pem(test)).get_json()
    assert on_test["decision"] == "allow"
    ca_service.revocation.revoke(formal.serial, "key-compromise", actor=people["ops"])
    later = (CUTOVER + timedelta(days=1)).isoformat().replace("+", "%2B")
    revoked = client.post(f"/access-check?at={later}", data=pem(formal)).get_json()
    assert (revoked["decision"], revoked["reasons"]) == ("deny", ["certificate revoked"])


def test_bad_input_is_a_400_naming_the_field(client: FlaskClient) -> None:
    garbage = client.post("/access-check", data=b"not a certificate")
    assert garbage.status_code == 400 and garbage.get_json()["error"] == "invalid"
    assert "证书格式无效" in garbage.get_json()["message_zh"]
    bad_at = client.post("/access-check?at=tomorrow", data=b"")
    assert bad_at.status_code == 400 and "at: " in bad_at.get_json()["message"]
    assert client.get("/access-check").status_code == 405
    unknown = client.post("/access-check?platform=staging", data=b"")
    assert (
        unknown.status_code == 400 and "platform: unknown platform 'staging'" in unknown.get_json()["message"]
    )
    # A certificate is small: the UI's upload limit does not apply to this unauthenticated endpoint.
    assert client.post("/access-check", data=b"x" * (MAX_REQUEST + 1)).status_code == 413


@pytest.fixture
def server(ca_service: Service) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1 (werkzeug's: stdlib socketserver, clean shutdown)."""
    srv = make_server("127.0.0.1", 0, create_app(ca_service), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_over_real_http(server: str, ca_service: Service, people: dict[str, Actor]) -> None:
    cert = issued(ca_service, people, "formal")
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        f"{server}/access-check?at=2020-11-14T16:00:00Z",
        data=pem(cert),
        headers={"Content-Type": "application/x-pem-file"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        body = json.loads(r.read())
    assert body["decision"] == "allow" and body["serial"] == cert.serial
    bad = urllib.request.Request(f"{server}/access-check", data=b"junk", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(bad, timeout=10)  # noqa: S310
    assert caught.value.code == 400
    caught.value.close()  # the error carries the open response
