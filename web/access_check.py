"""POST /access-check: would a connection presenting this certificate be let in? (issue 6)

The body is the certificate, PEM (or DER); an empty body asks about a connection without a certificate.
Query parameters: ``platform`` (cutover.toml, default production) and ``at`` (ISO 8601, default now). The
answer is JSON: decision (allow/deny), reasons, warnings. No rule lives here: AccessService decides.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from pki.serialize import access_to_dict
from pki.services import Service
from pki.services.access import parse_instant
from web.ocsp_http import MAX_REQUEST

access_check = Blueprint("access_check", __name__)


@access_check.post("/access-check")
def check() -> Response:
    request.max_content_length = (
        MAX_REQUEST  # a certificate, not an upload: the UI's larger limit is not for this
    )
    svc: Service = current_app.extensions["pki_service"]
    raw_at = request.args.get("at", "").strip()
    result = svc.access.check(
        request.get_data(cache=False) or None,
        platform=request.args.get("platform", "production"),
        at=parse_instant(raw_at) if raw_at else None,
    )
    response = jsonify(access_to_dict(result))
    response.headers["Cache-Control"] = "no-store"
    return response
