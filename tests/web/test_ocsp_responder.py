"""The dedicated responder (`pkictl ocsp serve`): the ASGI app on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from pki.services import Actor, Service
from tests.support.pki import approved, csr_for, key
from web.ocsp_asgi import ocsp_app


@pytest.fixture
def responder(ca_service: Service) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        ocsp_app(ca_service),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="error",
        access_log=False,
        loop="asyncio",
        http="httptools",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def _post(url: str, body: bytes, content_type: str = "application/ocsp-request") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 (127.0.0.1 only)
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_answers_post_and_get_and_sees_revocations_at_once(
    responder: str, ca_service: Service, people: dict[str, Actor]
) -> None:
    row = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 950)), actor=people["distributor"]
    )
    cert = x509.load_der_x509_certificate(row.der)
    issuer = ca_service.authority.get("test").certificate
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )
    status, body = _post(f"{responder}/ocsp/test", der)
    assert status == 200 and ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD
    ca_service.revocation.revoke(row.serial, "keyCompromise", actor=people["ops"])
    status, body = _post(f"{responder}/ocsp", der)
    assert ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.REVOKED
    encoded = urllib.request.quote(base64.b64encode(der).decode("ascii"), safe="")
    with urllib.request.urlopen(f"{responder}/ocsp/test/{encoded}", timeout=5) as r:  # noqa: S310
        assert ocsp.load_der_ocsp_response(r.read()).certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_refuses_what_is_not_an_ocsp_request(responder: str) -> None:
    assert _post(f"{responder}/ocsp", b"x", "text/plain")[0] == 415
    assert _post(f"{responder}/ocsp", b"")[0] == 400
    assert _post(f"{responder}/ocsp", b"0" * (64 * 1024 + 1))[0] == 413
    assert _post(f"{responder}/elsewhere", b"x")[0] == 404
    status, body = _post(f"{responder}/ocsp", b"\x30\x03\x02\x01\x01")
    assert status == 200
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
