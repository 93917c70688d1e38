"""Certificates: list and detail with status and validity; download PEM and chain."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request, url_for
from werkzeug.wrappers import Response

from pki.ca.names import certificate_names
from pki.enums import AccessType
from pki.services import CertificateFilter
from web.ui import actor, service
from web.ui.people import want

bp = Blueprint("certificates", __name__, url_prefix="/certificates")
PAGE_SIZE = 50
_DOWNLOADS = {"pem": ("application/x-pem-file", "pem"), "chain": ("application/x-pem-file", "chain.pem")}


@bp.get("/")
def index() -> str:
    svc = service()
    status = request.args.get("status", "")
    kind = request.args.get("kind", "")
    after = request.args.get("after", "")
    flt = CertificateFilter(
        status=status if status in ("valid", "revoked", "expired") else None,
        kind=AccessType(kind) if kind in {k.value for k in AccessType} else None,
        after_id=int(after) if after.isdigit() else None,
        limit=PAGE_SIZE + 1,
    )
    rows = svc.certificates.find(flt, actor=actor())
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_url = None
    if more:
        keep: dict[str, Any] = {k: v for k, v in request.args.items() if k != "after" and v}
        next_url = url_for("certificates.index", after=rows[-1].id, **keep)
    return render_template(
        "certificates/list.html",
        rows=[(c, svc.certificates.status_of(c)) for c in rows],
        placements=svc.certificates.placements(c.id for c in rows if c.id is not None),
        args=request.args,
        next_url=next_url,
    )


@bp.get("/<serial>")
def detail(serial: str) -> str:
    svc = service()
    cert = svc.certificates.get(serial, actor=actor())
    subject, issuer = certificate_names(cert.der)
    want(cert.issued_by, cert.revoked_by)
    return render_template(
        "certificates/detail.html",
        cert=cert,
        subject=subject,
        issuer=issuer,
        status=svc.certificates.status_of(cert),
        placement=svc.certificates.placement(cert.id) if cert.id is not None else None,
    )


@bp.get("/<serial>.<fmt>")
def download(serial: str, fmt: str) -> Response:
    if fmt not in _DOWNLOADS:
        abort(404)
    mimetype, suffix = _DOWNLOADS[fmt]
    cert = service().certificates.get(serial, actor=actor())
    body = service().certificates.export(cert.serial, fmt, actor=actor())
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={cert.serial}.{suffix}"
    return response
