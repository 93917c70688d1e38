"""Requests (附件7 applications) through acceptance and review, bulk imports, and their history."""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from pki.desk.contract import Input, acting, later, operation
from pki.desk.types import Document, FileData, Instant, Name, RecordId, Serial, Text
from pki.enums import AccessMode, AccessType, Action, Deal, RequestState

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "requests"
# The 附件7 fields as JSON (docs/application-json.md); the service validates each and names the bad ones.
Application = dict[str, str | int | bool | None]


class NewRequest(Input):
    application: Application = Field(max_length=100)
    point: Name | None = None  # the acceptance point (受理点) it is for: default the operator's own


class RequestRef(Input):
    request_id: RecordId


class NewDeal(Input):
    type: Deal
    serial: Serial  # the certificate the deal concerns
    application: Application | None = Field(default=None, max_length=100)  # a change's new form
    months: int | None = Field(default=None, ge=1, le=120)  # a renewal's validity
    reason: Text = ""  # a revocation reason (revoke); returned or destroyed (replace-damaged)
    comment: Text = ""
    point: Name | None = None


class EditRequest(RequestRef):
    application: Application = Field(max_length=100)


class Accept(RequestRef):
    opinion: Literal["agree", "disagree"]
    usbkey: Text = ""
    comment: Text = ""
    # the acceptor checked that the unit's credit code, on record under another unit name, is right
    confirm_uscc: bool = False


class Review(RequestRef):
    decision: Literal["approve", "return", "reject"]
    reason: Text = ""


class Cancel(RequestRef):
    reason: Text


class ListRequests(Input):
    status: RequestState | None = None
    province: Name | None = None
    access_type: AccessType | None = None
    search: Name | None = None
    after_id: int | None = None  # the service checks the bound and names it (pki/ids.py)
    limit: int = Field(default=100, ge=1, le=10_000)


class ImportUnits(Input):
    csv: FileData
    source_name: Name = "units.csv"
    defaults: Application = Field(max_length=100)
    label: Name
    access_mode: AccessMode = AccessMode.BATCH
    skip_invalid: bool = False
    point: Name | None = None


class Rule(Document):
    rule: str
    passed: bool
    reason: str
    reason_zh: str


class Prerequisites(Document):
    applies: bool
    passed: bool
    at: Instant
    rules: list[Rule]


class DealCertificate(Document):
    """The certificate (and USB key) a deal concerns."""

    serial: str
    status: str
    not_valid_after: Instant
    token_serial: str | None
    token_state: str | None


class RowProblem(BaseModel):
    field: str
    message: str


class RejectedRow(BaseModel):
    line: int
    errors: list[RowProblem]


class ImportResult(BaseModel):
    batch_id: int | None
    total: int
    imported: list[int]
    rejected: list[RejectedRow]


def rows_json(rows: Any) -> list[dict[str, Any]]:
    """Bad rows of an import as the API and --json report them."""
    return [
        {"line": r.row, "errors": [{"field": e.field, "message": e.message} for e in r.errors]} for r in rows
    ]


@cache
def _detail_model() -> Any:
    from pydantic import create_model

    from pki.desk.schemas import AuditDoc, RequestDoc

    return create_model(
        "RequestDetail",
        __base__=RequestDoc,
        history=(list[AuditDoc], ...),
        prerequisites=(Prerequisites, ...),
        deal_certificate=(DealCertificate | None, None),
    )


def _request_doc() -> Any:
    from pki.desk.schemas import RequestDoc

    return RequestDoc


REQUEST = later(_request_doc)
REQUESTS = later(lambda: list[_request_doc()])  # type: ignore[misc]


@operation(
    "request.new",
    "POST",
    "/requests",
    NewRequest,
    REQUEST,
    summary="Enter an application",
    tag=TAG,
    status=201,
)
def new(svc: Service, actor: Actor | None, data: NewRequest) -> Any:
    return svc.requests.create(data.application, actor=acting(actor), point=data.point)


@operation(
    "request.deal",
    "POST",
    "/deals",
    NewDeal,
    REQUEST,
    summary="Enter a deal on a certificate (renew, rekey, change, replacement, unlock, hold, release, revoke)",
    tag=TAG,
    status=201,
)
def new_deal(svc: Service, actor: Actor | None, data: NewDeal) -> Any:
    return svc.deals.open(
        data.type,
        data.serial,
        actor=acting(actor),
        application=data.application,
        months=data.months,
        reason=data.reason,
        comment=data.comment,
        point=data.point,
    )


@operation(
    "request.edit",
    "PUT",
    "/requests/{request_id}",
    EditRequest,
    REQUEST,
    summary="Replace an application's fields (voids an earlier acceptance)",
    tag=TAG,
)
def edit(svc: Service, actor: Actor | None, data: EditRequest) -> Any:
    return svc.requests.edit(data.request_id, data.application, actor=acting(actor))


@operation(
    "request.import",
    "POST",
    "/requests/imports",
    ImportUnits,
    ImportResult,
    summary="Import a 附件4–6 unit list (CSV), one request per unit",
    tag=TAG,
    status=201,
)
def import_units(svc: Service, actor: Actor | None, data: ImportUnits) -> Any:
    result = svc.bulk.import_units(
        data.csv,
        actor=acting(actor),
        defaults=data.defaults,
        label=data.label,
        access_mode=data.access_mode,
        source_name=data.source_name,
        skip_invalid=data.skip_invalid,
        point=data.point,
    )
    return {
        "batch_id": result.batch_id,
        "total": result.total,
        "imported": result.request_ids,
        "rejected": rows_json(result.rejected),
    }


@operation(
    "request.list",
    "GET",
    "/requests",
    ListRequests,
    REQUESTS,
    summary="List the requests of the operator's acceptance points, oldest first",
    tag=TAG,
    needs_actor=False,
)
def find(svc: Service, actor: Actor | None, data: ListRequests) -> Any:
    from pki.services import RequestFilter

    return svc.requests.find(
        RequestFilter(
            state=data.status,
            province=data.province,
            access_type=data.access_type,
            search=data.search,
            after_id=data.after_id,
            limit=data.limit,
        ),
        actor=actor,
    )


@operation(
    "request.show",
    "GET",
    "/requests/{request_id}",
    RequestRef,
    later(_detail_model),
    summary="One request, its history and its test → formal prerequisites",
    tag=TAG,
    needs_actor=False,
)
def show(svc: Service, actor: Actor | None, data: RequestRef) -> Any:
    req = svc.requests.get(data.request_id, actor=actor)
    report = svc.cutover.prerequisites(data.request_id, actor=actor)
    from pki.serialize import audit_to_dict

    doc = _request_doc().model_validate(req).model_dump()
    subject = svc.deals.subject(data.request_id, actor=actor)
    return doc | {
        "deal_certificate": None if subject is None else asdict(subject),
        "history": [audit_to_dict(a) for a in svc.requests.history(data.request_id, actor=actor)],
        "prerequisites": {
            "applies": report.applies,
            "passed": report.passed,
            "at": report.at,
            "rules": report.rules,
        },
    }


@operation(
    "request.accept",
    "POST",
    "/requests/{request_id}/accept",
    Accept,
    REQUEST,
    summary="Record the acceptor's opinion (受理意见)",
    tag=TAG,
)
def accept(svc: Service, actor: Actor | None, data: Accept) -> Any:
    return svc.requests.accept(
        data.request_id,
        actor=acting(actor),
        agree=data.opinion == "agree",
        usbkey_model=data.usbkey,
        comment=data.comment,
        confirm_uscc=data.confirm_uscc,
    )


@operation(
    "request.countersign",
    "POST",
    "/requests/{request_id}/countersign",
    RequestRef,
    REQUEST,
    summary="Countersign an acceptance (负责人)",
    tag=TAG,
)
def countersign(svc: Service, actor: Actor | None, data: RequestRef) -> Any:
    return svc.requests.countersign(data.request_id, actor=acting(actor))


@operation(
    "request.review",
    "POST",
    "/requests/{request_id}/review",
    Review,
    REQUEST,
    summary="Approve, return for correction or reject",
    tag=TAG,
)
def review(svc: Service, actor: Actor | None, data: Review) -> Any:
    return svc.requests.review(
        data.request_id, actor=acting(actor), decision=Action(data.decision), reason=data.reason
    )


@operation(
    "request.cancel",
    "POST",
    "/requests/{request_id}/cancel",
    Cancel,
    REQUEST,
    summary="Withdraw a request that has not been issued",
    tag=TAG,
)
def cancel(svc: Service, actor: Actor | None, data: Cancel) -> Any:
    return svc.requests.cancel(data.request_id, actor=acting(actor), reason=data.reason)
