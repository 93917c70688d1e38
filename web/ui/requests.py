"""Requests: entry (录入), edit, queues and the full list, detail with history and the user's actions,
acceptance, countersignature, review, cancellation, the printable 附件7 and attachments."""

from __future__ import annotations

from datetime import date, datetime
from io import BytesIO
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from pki.enums import EVIDENCE_LABELS_ZH, NEW_KEY_DEALS, AccessType, Action, EvidenceType, RequestState
from pki.errors import FieldError, PrerequisiteMissingError, ValidationError
from pki.models import Certificate, CertificateRequest
from pki.services import CertificateFilter, RequestFilter
from pki.services.attachments import sniff
from web.errors import field_errors
from web.ui import actor, service
from web.ui.form_layout import FORM_FIELDS
from web.ui.people import want_all

bp = Blueprint("requests", __name__, url_prefix="/requests")
PAGE_SIZE = 50
Page = str | tuple[str, int] | Response


# -- lists ---------------------------------------------------------------------------------------------


@bp.get("/")
def index() -> Page:
    return _list_page(queue=False)


@bp.get("/queue")
def queue() -> Page:
    return _list_page(queue=True)


def _filter_args(args: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The list's filters from the query string, and an error per bad one (named as on the form)."""
    errors: dict[str, list[str]] = {}
    flt_args: dict[str, Any] = {}
    state = args.get("state", "")
    if state:
        try:
            flt_args["state"] = RequestState(state)
        except ValueError:
            errors["state"] = ["状态无效"]
    access = args.get("access_type", "")
    if access:
        try:
            flt_args["access_type"] = AccessType(access)
        except ValueError:
            errors["access_type"] = ["接入类型无效"]
    for key, label in (("entered_from", "起始日期"), ("entered_to", "截止日期")):
        raw = args.get(key, "").strip()
        if raw:
            try:
                flt_args[key] = date.fromisoformat(raw)
            except ValueError:
                errors[key] = [f"{label}：日期格式应为年-月-日，例如 2020-10-19"]
    flt_args["province"] = args.get("province", "").strip()[:16] or None
    flt_args["search"] = args.get("q", "").strip()[:64] or None
    return flt_args, errors


def _list_page(*, queue: bool) -> Page:
    """One page, newest first, keyset-paginated on id (``before``): as fast on page 2,000 as on page 1."""
    args = request.args
    flt_args, errors = _filter_args(args)
    flt_args.update(limit=PAGE_SIZE + 1, newest_first=True)
    before = args.get("before", "")
    if before.isdigit():
        flt_args["before_id"] = int(before)
    try:
        before_at = datetime.fromisoformat(args.get("before_at", ""))
        if before_at.tzinfo is not None:
            flt_args["before_entered_at"] = before_at
    except ValueError:
        pass
    if queue:
        flt_args["queue"] = True
    rows = [] if errors else service().requests.find(RequestFilter(**flt_args), actor=actor())
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_args: dict[str, Any] = {k: v for k, v in args.items() if k not in ("before", "before_at") and v}
    first_args = dict(next_args)
    if more and rows:
        next_args["before"] = str(rows[-1].id)
        if "entered_from" in flt_args or "entered_to" in flt_args:
            next_args["before_at"] = rows[-1].entered_at.isoformat()
    return render_template(
        "requests/list.html",
        rows=rows,
        queue=queue,
        errors=errors,
        args=args,
        next_url=url_for(request.endpoint or "requests.index", **next_args) if more else None,
        first_url=url_for(request.endpoint or "requests.index", **first_args),
        export_url=url_for("requests.export", **first_args),
        provinces=service().ctx.policies.provinces.names,
        queue_states=service().requests.queue_states(actor()) if queue else (),
        queue_labels=service().deal_options.queue_labels(actor()),
    )


EXPORT_LIMIT = 10_000


@bp.get("/export.csv")
def export() -> Page:
    """The list's rows (its filters, newest first, at most EXPORT_LIMIT) as CSV for Excel or WPS, with the
    people who signed each step by name."""
    from web.ui.exports import requests_csv

    flt_args, errors = _filter_args(request.args)
    if errors:
        abort(400)
    rows = service().requests.find(
        RequestFilter(**flt_args, limit=EXPORT_LIMIT, newest_first=True), actor=actor()
    )
    body = requests_csv(rows, service().users.display_names(n for r in rows for n in people_of(r)))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=requests.csv"
    return response


def people_of(req: CertificateRequest) -> tuple[str | None, ...]:
    """Everyone who signed a step of ``req`` (录入员, 受理人, 负责人, 审核员, 签发 and 分发)."""
    return (
        req.entered_by,
        req.accepted_by,
        req.countersigned_by,
        req.reviewed_by,
        req.issued_by,
        req.distributed_by,
    )


# -- entry and edit ------------------------------------------------------------------------------------


def typed_form() -> dict[str, str]:
    """The form as typed: only the 附件7 fields, blanks dropped (the service says which are required)."""
    return {k: request.form.get(k, "") for k in FORM_FIELDS if request.form.get(k, "").strip()}


def as_form(req: CertificateRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in FORM_FIELDS:
        value = getattr(req, key)
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = "" if value is None else str(value)
    return out


def form_page(
    values: dict[str, str],
    errors: dict[str, list[str]],
    *,
    req: CertificateRequest | None,
    point: str = "",
    change_of: Certificate | None = None,
    comment: str = "",
) -> str:
    """The 附件7 form: a new application, an edit of ``req``, or a change deal on ``change_of``."""
    policies = service().ctx.policies
    # A new request goes to a point of the clerk's scope: a choice when there is more than their own.
    points = [] if req else service().points.for_new_work(actor=actor())
    return render_template(
        "requests/form.html",
        values=values,
        errors=errors,
        req=req,
        change_of=change_of,
        comment=comment,
        provinces=policies.provinces.names,
        validity_months=policies.form.validity_months,
        points=points if len(points) > 1 else [],
        point=point,
    )


@bp.route("/new", methods=["GET", "POST"])
def new() -> Page:
    svc = service()
    if request.method == "GET":
        if not svc.ctx.policies.workflow.role_allows(actor().roles, Action.ENTER):
            abort(403)  # not offered; a forced POST is refused by the service
        return form_page({"application_date": svc.ctx.today().isoformat()}, {}, req=None)
    typed = typed_form()
    point = request.form.get("point", "").strip()
    try:
        created = svc.requests.create(typed, actor=actor(), point=point or None)
    except ValidationError as e:
        return form_page(typed, field_errors(e), req=None, point=point), 400
    flash(f"申请 {created.id} 已录入", "ok")
    return redirect(url_for("requests.detail", request_id=created.id))


@bp.route("/<int:request_id>/edit", methods=["GET", "POST"])
def edit(request_id: int) -> Page:
    svc = service()
    req = svc.requests.get(request_id, actor=actor())
    if request.method == "GET":
        if Action.EDIT not in svc.requests.allowed_actions(request_id, actor()):
            abort(403)  # not offered; a forced POST is refused by the service
        return form_page(as_form(req), {}, req=req)
    typed = typed_form()
    try:
        svc.requests.edit(request_id, typed, actor=actor(), expected_version=_version())
    except ValidationError as e:
        return form_page(typed, field_errors(e), req=req), 400
    flash("申请已修改", "ok")
    return redirect(url_for("requests.detail", request_id=request_id))


# -- detail and actions --------------------------------------------------------------------------------


def _detail_page(request_id: int, errors: dict[str, list[str]] | None = None, status: int = 200) -> Page:
    svc = service()
    me = actor()
    req = svc.requests.get(request_id, actor=me)
    allowed = svc.requests.allowed_actions(request_id, me)
    attachments = svc.attachments.list_for(request_id, actor=me) if svc.attachments.may_read(me) else None
    prerequisites = svc.cutover.prerequisites(request_id, actor=me)
    evidence = (
        svc.parties.list_evidence(credential_number=req.credential_number) if prerequisites.applies else []
    )
    history = svc.requests.history(request_id, actor=me)
    want_all(people_of(req))
    want_all(h.actor for h in history)
    want_all(a.uploaded_by for a in attachments or ())
    want_all(e.recorded_by for e in evidence)
    page = render_template(
        "requests/detail.html",
        req=req,
        subject=svc.deals.subject(request_id, actor=me),
        certificates=svc.certificates.find(CertificateFilter(request_id=request_id), actor=me),
        allowed=allowed,
        Action=Action,
        history=history,
        acceptance=svc.requests.acceptance_check(request_id, actor=me) if Action.ACCEPT in allowed else None,
        usbkey_models=svc.stock.acceptable_models(req.point_id) if Action.ACCEPT in allowed else [],
        needs_usbkey=req.deal in NEW_KEY_DEALS,  # a deal on the key the unit holds names no model
        attachments=attachments,
        may_attach=svc.attachments.may_attach(me),
        attachment_kinds=svc.ctx.policies.access.attachment_kinds,
        prerequisites=prerequisites,
        rule_label=rule_label,
        evidence=evidence,
        evidence_labels={t.value: label for t, label in EVIDENCE_LABELS_ZH.items()},
        may_record_evidence=svc.parties.may_record_evidence(me),
        may_read_evidence=svc.parties.may_read_evidence(me),
        errors=errors or {},
        form=request.form if request.method == "POST" else {},
    )
    return (page, status) if status != 200 else page


@bp.get("/<int:request_id>")
def detail(request_id: int) -> Page:
    return _detail_page(request_id)


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() else None


_RULE_LABELS = {
    "fast_track": "可直接正式接入地区",
    "waiver": "来函说明",
    "test_certificate": "测试证书持有期限",
}


def rule_label(rule: str) -> str:
    """A test → formal rule's name in the clerks' words (the outcome and reason come from the service)."""
    report = rule.removeprefix("report:")
    if report != rule:
        try:
            return EVIDENCE_LABELS_ZH[EvidenceType(report)]
        except ValueError:
            return report
    return _RULE_LABELS.get(rule, rule)


def _act(request_id: int, done: str, call: Any, *, prefix: str = "") -> Page:
    """Run one service call; a refused form comes back with the errors beside its fields (``prefix``
    tells apart forms on the page whose fields share a name)."""
    try:
        call()
    except ValidationError as e:
        return _detail_page(request_id, {prefix + k: v for k, v in field_errors(e).items()}, 400)
    except PrerequisiteMissingError as e:  # approval refused: the reason beside the reviewer's decision
        return _detail_page(request_id, {"decision": [e.message_zh]}, 409)
    flash(done, "ok")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/<int:request_id>/accept")
def accept(request_id: int) -> Page:
    opinion = request.form.get("opinion", "")
    if opinion not in ("agree", "disagree"):
        err = ValidationError(
            [FieldError("opinion", "choose agree or disagree", "受理意见：请选择同意或不同意")]
        )
        return _detail_page(request_id, field_errors(err), 400)
    return _act(
        request_id,
        "受理意见已记录",
        lambda: service().requests.accept(
            request_id,
            actor=actor(),
            agree=opinion == "agree",
            usbkey_model=request.form.get("usbkey", ""),
            comment=request.form.get("comment", ""),
            expected_version=_version(),
            confirm_uscc=request.form.get("confirm_uscc") == "yes",
        ),
    )


@bp.post("/<int:request_id>/countersign")
def countersign(request_id: int) -> Page:
    return _act(
        request_id,
        "负责人已签字",
        lambda: service().requests.countersign(request_id, actor=actor(), expected_version=_version()),
    )


_DECISIONS = {"approve": Action.APPROVE, "return": Action.RETURN, "reject": Action.REJECT}


@bp.post("/<int:request_id>/review")
def review(request_id: int) -> Page:
    decision = _DECISIONS.get(request.form.get("decision", ""))
    if decision is None:
        err = ValidationError([FieldError("decision", "choose a decision", "审核意见：请选择")])
        return _detail_page(request_id, field_errors(err), 400)
    return _act(
        request_id,
        "审核意见已记录",
        lambda: service().requests.review(
            request_id,
            actor=actor(),
            decision=decision,
            reason=request.form.get("reason", ""),
            expected_version=_version(),
        ),
    )


@bp.post("/<int:request_id>/distribute")
def distribute(request_id: int) -> Page:
    """The hand-over (分发) of the USB key the certificate was issued onto, to the unit's named recipient."""
    return _act(
        request_id,
        "已分发",
        lambda: service().distribution.distribute(
            request_id, recipient=request.form.get("recipient", ""), actor=actor()
        ),
    )


@bp.post("/<int:request_id>/cancel")
def cancel(request_id: int) -> Page:
    return _act(
        request_id,
        "申请已撤销",
        lambda: service().requests.cancel(
            request_id,
            actor=actor(),
            reason=request.form.get("cancel_reason", ""),
            expected_version=_version(),
        ),
    )


# -- print and attachments -------------------------------------------------------------------------------


@bp.get("/<int:request_id>/print")
def printable(request_id: int) -> Page:
    req = service().requests.get(request_id, actor=actor())
    want_all(people_of(req))
    subject = service().deals.subject(request_id, actor=actor())
    return render_template("requests/print.html", req=req, subject=subject)


@bp.post("/<int:request_id>/attachments")
def upload(request_id: int) -> Page:
    file = request.files.get("file")
    data = file.read() if file else b""
    return _act(
        request_id,
        "附件已上传",
        lambda: service().attachments.add(
            request_id,
            kind=request.form.get("kind", ""),
            filename=(file.filename or "") if file else "",
            data=data,
            actor=actor(),
        ),
    )


@bp.get("/<int:request_id>/attachments/<int:attachment_id>")
def attachment(request_id: int, attachment_id: int) -> Response:
    row = service().attachments.read(request_id, attachment_id, actor=actor())
    response = Response(row.content, mimetype=row.media_type)
    response.headers["Content-Disposition"] = f"inline; filename=attachment-{row.id}"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- evidence for the test → formal rules (reports, waiver letters) ---------------------------------------


@bp.post("/<int:request_id>/evidence")
def add_evidence(request_id: int) -> Page:
    file = request.files.get("evidence_file")
    content = file.read() if file else b""
    credential_number = service().requests.get(request_id, actor=actor()).credential_number
    return _act(
        request_id,
        "材料已备案",
        lambda: service().parties.add_evidence(
            credential_number=credential_number,
            evidence_type=request.form.get("evidence_type", ""),
            reference=request.form.get("evidence_reference", ""),
            document_date=request.form.get("evidence_date", ""),
            filename=(file.filename or "") if file else "",
            content=content,
            actor=actor(),
        ),
        prefix="evidence_",
    )


@bp.get("/evidence/<int:evidence_id>")
def evidence_document(evidence_id: int) -> Response:
    record, content = service().parties.read_evidence(evidence_id, actor=actor())
    response = send_file(
        BytesIO(content),
        mimetype=sniff(content) or "application/octet-stream",
        as_attachment=True,
        download_name=record.filename,
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
