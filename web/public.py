"""Public endpoints, no login: CRLs at the CRL distribution points, CA certificates, the OCSP responder."""

from __future__ import annotations

from email.utils import format_datetime

from flask import Blueprint, Response, abort, current_app

from pki.services import Service
from web.ocsp_http import RESPONSE_TYPE, decode_get

public = Blueprint("public", __name__)


def _service() -> Service:
    svc: Service = current_app.extensions["pki_service"]
    return svc


@public.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@public.get("/crl/<slug>.crl")
def crl(slug: str) -> Response:
    record = _service().crl.latest(slug)
    response = Response(record.der, mimetype="application/pkix-crl")
    response.headers["Expires"] = format_datetime(record.next_update, usegmt=True)
    response.headers["Last-Modified"] = format_datetime(record.this_update, usegmt=True)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@public.get("/ca/<slug>.cer")
def ca_certificate(slug: str) -> Response:
    ca = _service().authority.get(slug)
    return Response(ca.record.certificate_der, mimetype="application/pkix-cert")


@public.get("/ocsp/<path:encoded>")
def ocsp_get(encoded: str) -> Response:
    """RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}."""
    data = decode_get(encoded)
    if data is None:
        abort(400)
    return _ocsp(data)


def _ocsp(data: bytes) -> Response:
    # POST /ocsp is answered before Flask by web.ocsp_fast_path; GET comes here.
    response = Response(_service().ocsp.respond(data), mimetype=RESPONSE_TYPE)
    response.headers["Cache-Control"] = "no-store"  # a revocation shows in the very next response
    return response
