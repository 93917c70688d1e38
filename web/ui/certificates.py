"""Certificates: list and detail with status and validity; download PEM and chain; the desk's deals on a
certificate (entering a deal, the change form) and the steps carried out on the server from its page (revoke,
hold, release)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from pki.ca.names import certificate_names
from pki.enums import DEAL_LABELS_ZH, AccessType, Deal
from pki.errors import FieldError, ValidationError
from pki.services import CertificateFilter
from web.errors import field_errors, person_page
from web.ui import actor, service
from web.ui.people import want
from web.ui.requests import as_form, form_page, typed_form

bp = Blueprint("certificates", __name__, url_prefix="/certificates")
PAGE_SIZE = 50
_DOWNLOADS = {"pem": ("application/x-pem-file", "pem"), "chain": ("application/x-pem-file", "chain.pem")}
Page = str | tuple[str, int] | Response

# What each deal does, in the counter's words, beside its form.
DEAL_HINTS_ZH: dict[Deal, str] = {
    Deal.RENEW: "原密钥续期，签发新证书",
    Deal.REKEY: "在USBKEY上生成新密钥，签发新证书",
    Deal.CHANGE: "单位名称、法定代表人、经办人等信息变更：填写变更后的申请表，新证书分发后吊销原证书",
    Deal.REPLACE_LOST: "USBKEY遗失：原证书以密钥泄露吊销，新USBKEY、新证书",
    Deal.REPLACE_DAMAGED: "USBKEY损坏：收回或销毁原USBKEY，新USBKEY、新证书",
    Deal.UNLOCK: "用户PIN已锁定：由分发员在受理点重设PIN，证书不变",
    Deal.HOLD: "暂停使用证书（可解冻）",
    Deal.RELEASE: "恢复已冻结的证书",
    Deal.REVOKE: "注销证书，原因须选择",
}
# The server steps: what the person is told when done.
_DONE_ZH = {"revoke": "证书已吊销", "hold": "证书已冻结", "release": "证书已解冻"}


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
def detail(serial: str) -> Page:
    return _detail_page(serial)


def _detail_page(serial: str, errors: dict[str, list[str]] | None = None, status: int = 200) -> Page:
    """The certificate's page; ``errors`` beside the fields of the form that was sent back (its values kept)."""
    svc = service()
    me = actor()
    cert = svc.certificates.get(serial, actor=me)
    subject, issuer = certificate_names(cert.der)
    want(cert.issued_by, cert.revoked_by)
    page = render_template(
        "certificates/detail.html",
        cert=cert,
        subject=subject,
        issuer=issuer,
        status=svc.certificates.status_of(cert),
        placement=svc.certificates.placement(cert.id) if cert.id is not None else None,
        deals=svc.deal_options.for_certificate(cert.serial, actor=me),
        deal_hints=DEAL_HINTS_ZH,
        validity_months=svc.ctx.policies.form.validity_months,
        errors=errors or {},
        form=request.form if request.method == "POST" else {},
    )
    return (page, status) if status != 200 else page


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


# -- deals ---------------------------------------------------------------------------------------------


def _prefixed(error: ValidationError, prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}-{k}": v for k, v in field_errors(error).items()}


def _months(raw: str) -> int | None:
    """A renewal's months as chosen ("" keeps the original's); ValidationError for anything else."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 3:
        raise ValidationError([FieldError("months", "months must be a number", "有效期无效")])
    return int(raw)


@bp.post("/<serial>/deals")
def open_deal(serial: str) -> Page:
    """Enter a deal on the certificate (every type but a change, which has its own form)."""
    try:
        deal = Deal(request.form.get("deal", ""))
    except ValueError:
        deal = None
    if deal is None or deal in (Deal.NEW, Deal.CHANGE):
        return _detail_page(serial, {"deal": ["业务类型：请选择"]}, 400)
    try:
        created = service().deals.open(
            deal,
            serial,
            actor=actor(),
            months=_months(request.form.get("months", "")),
            reason=request.form.get("reason", ""),
            comment=request.form.get("comment", ""),
        )
    except ValidationError as e:
        return _detail_page(serial, _prefixed(e, f"deal-{deal.value}"), 400)
    flash(f"{DEAL_LABELS_ZH[deal]}业务已录入（申请 {created.id}）", "ok")
    return redirect(url_for("requests.detail", request_id=created.id))


@bp.route("/<serial>/change", methods=["GET", "POST"])
def change(serial: str) -> Page:
    """A change (变更): the unit's record as it stands, to be corrected, entered as a deal on the certificate."""
    svc = service()
    me = actor()
    cert = svc.certificates.get(serial, actor=me)
    if request.method == "GET":
        options = svc.deal_options.for_certificate(cert.serial, actor=me)
        if Deal.CHANGE not in options.startable:
            if options.open_deal is not None:
                return person_page(409, f"该证书已有在办业务（申请 {options.open_deal.request_id}）")
            if Deal.CHANGE in options.unavailable:
                return person_page(409, options.unavailable[Deal.CHANGE])
            abort(403)  # not offered; a forced POST is refused by the service
        values = as_form(svc.deal_options.application_of(cert.serial, actor=me))
        values["application_date"] = svc.ctx.today().isoformat()
        return form_page(values, {}, req=None, change_of=cert)
    typed = typed_form()
    point = request.form.get("point", "").strip()
    comment = request.form.get("comment", "")
    try:
        created = svc.deals.open(
            Deal.CHANGE, cert.serial, actor=me, application=typed, comment=comment, point=point or None
        )
    except ValidationError as e:
        return form_page(typed, field_errors(e), req=None, point=point, change_of=cert, comment=comment), 400
    flash(f"变更业务已录入（申请 {created.id}）", "ok")
    return redirect(url_for("requests.detail", request_id=created.id))


@bp.post("/<serial>/<any(revoke, hold, release):step>")
def carry_out(serial: str, step: str) -> Page:
    """Revoke, hold or release: an approved deal of that type carried out, or, for the roles policy lets act
    without one, done directly. Confirmed with a tick, since none of them can be taken back here."""
    svc = service()
    me = actor()
    comment = request.form.get("comment", "")
    if request.form.get("confirm") != "yes":
        if step not in svc.deal_options.for_certificate(serial, actor=me).carry_out:
            abort(403)  # not offered: say so rather than ask for a tick
        return _detail_page(serial, {f"{step}-confirm": ["请勾选确认后再提交"]}, 400)
    try:
        if step == "revoke":
            cert = svc.revocation.revoke(
                serial, request.form.get("reason", "").strip() or None, actor=me, comment=comment
            )
        elif step == "hold":
            cert = svc.revocation.hold(serial, actor=me, comment=comment)
        else:
            cert = svc.revocation.release(serial, actor=me, comment=comment)
    except ValidationError as e:
        return _detail_page(serial, _prefixed(e, step), 400)
    flash(_DONE_ZH[step], "ok")
    return redirect(url_for("certificates.detail", serial=cert.serial))
