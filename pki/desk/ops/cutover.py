"""Connected parties, test → formal evidence, the cutover's plan and status, access checks, the audit trail
and a request's attachments."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from pki.desk.contract import Input, Sink, acting, later, operation
from pki.desk.types import FileData, Instant, Name, RecordId, Text
from pki.enums import AccessMode, EvidenceType, PartyKind

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "cutover"
Platform = Field(default="production", min_length=1, max_length=64)
InstantText = Field(default=None, min_length=1, max_length=64)  # ISO 8601; without an offset, Beijing time


def _instant(text: str | None) -> datetime | None:
    from pki.services.access import parse_instant

    return parse_instant(text) if text else None


class ImportParties(Input):
    csv: FileData
    source_name: Name = "units.csv"
    platform: str = Platform
    kind: PartyKind = PartyKind.UNIT
    access_mode: AccessMode = AccessMode.BATCH
    province: Name | None = None
    skip_invalid: bool = False
    point: Name | None = None  # the acceptance point registering them: default the operator's own


class PartiesImported(BaseModel):
    total: int
    imported: int
    already_registered: list[str]
    rejected: list[str]


class ListParties(Input):
    platform: str | None = Field(default=None, min_length=1, max_length=64)
    province: Name | None = None
    after_id: int | None = None  # the service checks the bound and names it (pki/ids.py)
    limit: int = Field(default=1000, ge=1, le=10_000)


class PartyDoc(BaseModel):
    id: int
    platform: str
    credential_number: str
    name: str
    province: str
    kind: str
    access_mode: str
    state: str


class AddEvidence(Input):
    uscc: str = Field(min_length=1, max_length=32)
    type: EvidenceType
    reference: Text
    date: str = Field(min_length=1, max_length=32)  # YYYY-MM-DD; the service names a bad one
    filename: Name
    content: FileData


class EvidenceDoc(BaseModel):
    id: int
    credential_number: str
    type: str
    reference: str
    date: date
    filename: str
    size: int
    sha256: str
    recorded_by: str
    recorded_at: Instant


class ListEvidence(Input):
    uscc: str | None = Field(default=None, min_length=1, max_length=32)


class Plan(Input):
    platform: str = Platform
    at: str | None = InstantText
    days: int = Field(default=30, ge=0, le=3650)


class ReadinessRow(BaseModel):
    province: str
    credential_number: str
    name: str
    kind: str
    readiness: str
    reason: str
    valid_until: Instant | None


class PlanDoc(BaseModel):
    platform: str
    at: Instant
    cutover: Instant
    horizon: Instant
    totals: dict[str, int]
    by_province: dict[str, dict[str, int]]
    parties: list[ReadinessRow]


class Status(Input):
    refused: bool = False


class Refusal(BaseModel):
    credential_number: str
    name: str
    reason: str


class RunDoc(BaseModel):
    platform: str
    at: Instant
    cutover: Instant
    state: str
    allowed: int
    refused: int
    changed: bool
    started_by: str | None
    started_at: Instant | None
    finished_at: Instant | None


class PlatformDoc(BaseModel):
    platform: str
    label_zh: str
    cutover: Instant
    enforced: bool
    run: RunDoc | None
    refused: list[Refusal] | None


class AccessCheck(Input):
    certificate: FileData | None = None  # PEM or DER; none: a connection that presents no certificate
    platform: str = Platform
    at: str | None = InstantText


class AccessDoc(BaseModel):
    decision: Literal["allow", "deny"]
    reasons: list[str]
    warnings: list[str]
    platform: str
    at: Instant
    serial: str | None
    credential_number: str | None
    kind: str | None
    party: str | None


class AuditQuery(Input):
    limit: int = Field(default=50, ge=1, le=100_000)
    request_id: RecordId | None = None


class AttachmentRef(Input):
    request_id: RecordId


class AddAttachment(AttachmentRef):
    kind: str = Field(min_length=1, max_length=32)
    filename: Name
    content: FileData


class AttachmentDoc(BaseModel):
    id: int
    request_id: int
    kind: str
    filename: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: Instant


def _audit_docs() -> Any:
    from pki.desk.schemas import AuditDoc

    return list[AuditDoc]


def run_doc(r: Any) -> dict[str, Any]:
    """A cutover run's summary (services/cutover.RunSummary) as `cutover run` and `cutover status` print it."""
    return {
        "platform": r.platform,
        "at": r.at,
        "cutover": r.cutover,
        "state": r.state,
        "allowed": r.allowed,
        "refused": r.refused,
        "changed": r.changed,
        "started_by": r.started_by or None,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }


def _evidence(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "credential_number": r.credential_number,
        "type": r.evidence_type.value,
        "reference": r.reference,
        "date": r.document_date,
        "filename": r.filename,
        "size": r.size,
        "sha256": r.sha256,
        "recorded_by": r.recorded_by,
        "recorded_at": r.recorded_at,
    }


@operation(
    "party.import",
    "POST",
    "/parties/imports",
    ImportParties,
    PartiesImported,
    summary="Register the units of a 附件4–6 list (CSV) as parties of a platform",
    tag=TAG,
    status=201,
)
def import_parties(svc: Service, actor: Actor | None, data: ImportParties) -> Any:
    result = svc.parties.import_list(
        data.csv,
        actor=acting(actor),
        platform=data.platform,
        party_kind=data.kind,
        access_mode=data.access_mode,
        province=data.province,
        source_name=data.source_name,
        skip_invalid=data.skip_invalid,
        point=data.point,
    )
    return {
        "total": result.total,
        "imported": result.imported,
        "already_registered": result.already_registered,
        "rejected": [str(r) for r in result.rejected],
    }


@operation(
    "party.list",
    "GET",
    "/parties",
    ListParties,
    list[PartyDoc],
    summary="One page of parties in id order (keyset: after_id)",
    tag=TAG,
    needs_actor=False,
)
def list_parties(svc: Service, actor: Actor | None, data: ListParties) -> Any:
    rows = svc.parties.list_parties(
        platform=data.platform, province=data.province, after_id=data.after_id, limit=data.limit, actor=actor
    )
    return [
        {
            "id": p.id,
            "platform": p.platform,
            "credential_number": p.credential_number,
            "name": p.name,
            "province": p.province,
            "kind": p.party_kind.value,
            "access_mode": p.access_mode.value,
            "state": p.state.value,
        }
        for p in rows
    ]


@operation(
    "evidence.add",
    "POST",
    "/evidence",
    AddEvidence,
    EvidenceDoc,
    summary="Record a software-test report, a 等级保护 report or a waiver letter",
    tag=TAG,
    status=201,
)
def add_evidence(svc: Service, actor: Actor | None, data: AddEvidence) -> Any:
    record = svc.parties.add_evidence(
        credential_number=data.uscc,
        evidence_type=data.type,
        reference=data.reference,
        document_date=data.date,
        filename=data.filename,
        content=data.content,
        actor=acting(actor),
    )
    return _evidence(record)


@operation(
    "evidence.list",
    "GET",
    "/evidence",
    ListEvidence,
    list[EvidenceDoc],
    summary="Evidence on record, newest first",
    tag=TAG,
    needs_actor=False,
)
def list_evidence(svc: Service, actor: Actor | None, data: ListEvidence) -> Any:
    return [_evidence(r) for r in svc.parties.list_evidence(credential_number=data.uscc)]


@operation(
    "cutover.plan",
    "GET",
    "/cutover/plan",
    Plan,
    PlanDoc,
    summary="Readiness per party and totals per province at an instant",
    tag=TAG,
    needs_actor=False,
    rows="parties",
)
def plan(svc: Service, actor: Actor | None, data: Plan, sink: Sink) -> Any:
    from pki.enums import Readiness

    summary = svc.cutover.plan(
        actor=actor,
        platform=data.platform,
        at=_instant(data.at),
        days=data.days,
        sink=lambda r: sink(
            {
                "province": r.province,
                "credential_number": r.credential_number,
                "name": r.name,
                "kind": r.party_kind.value,
                "readiness": r.readiness.value,
                "reason": r.reason,
                "valid_until": r.valid_until,
            }
        ),
    )
    return {
        "platform": summary.platform,
        "at": summary.at,
        "cutover": summary.cutover,
        "horizon": summary.horizon,
        "totals": {r.value: summary.totals.get(r, 0) for r in Readiness},
        "by_province": {
            province: {r.value: counts.get(r, 0) for r in Readiness}
            for province, counts in summary.by_province.items()
        },
    }


@operation(
    "cutover.status",
    "GET",
    "/cutover/status",
    Status,
    list[PlatformDoc],
    summary="Each platform's cutover instant, enforcement and run totals (and refusals)",
    tag=TAG,
    needs_actor=False,
)
def status(svc: Service, actor: Actor | None, data: Status) -> Any:
    out = []
    for p in svc.cutover.status():
        refused = (
            svc.cutover.decisions(platform=p.platform, refused_only=True, actor=actor) if data.refused else []
        )
        out.append(
            {
                "platform": p.platform,
                "label_zh": p.label_zh,
                "cutover": p.cutover,
                "enforced": p.enforced,
                "run": run_doc(p.run) if p.run else None,
                "refused": [
                    {"credential_number": d.credential_number, "name": d.name, "reason": d.reason}
                    for d in refused
                ]
                if data.refused
                else None,
            }
        )
    return out


@operation(
    "access.check",
    "POST",
    "/access-checks",
    AccessCheck,
    AccessDoc,
    summary="Would a connection presenting this certificate (or none) be let in?",
    tag=TAG,
    needs_actor=False,
    reads_only=True,
)
def access_check(svc: Service, actor: Actor | None, data: AccessCheck) -> Any:
    from pki.serialize import access_to_dict

    result = svc.access.check(data.certificate or None, platform=data.platform, at=_instant(data.at))
    return access_to_dict(result)


@operation(
    "audit.show",
    "GET",
    "/audit",
    AuditQuery,
    later(_audit_docs),
    summary="The newest audit records (of one request), oldest of them first",
    tag=TAG,
    needs_actor=False,
)
def audit_show(svc: Service, actor: Actor | None, data: AuditQuery) -> Any:
    from pki.serialize import audit_to_dict

    records = (
        svc.audit.for_request(data.request_id, limit=data.limit, actor=actor)
        if data.request_id is not None
        else svc.audit.recent(limit=data.limit, actor=actor)
    )
    return [audit_to_dict(r) for r in records]


@operation(
    "attachment.add",
    "POST",
    "/requests/{request_id}/attachments",
    AddAttachment,
    AttachmentDoc,
    summary="Keep a scan (PDF, JPEG, PNG) with a request",
    tag=TAG,
    status=201,
)
def add_attachment(svc: Service, actor: Actor | None, data: AddAttachment) -> Any:
    return svc.attachments.add(
        data.request_id, kind=data.kind, filename=data.filename, data=data.content, actor=acting(actor)
    )


@operation(
    "attachment.list",
    "GET",
    "/requests/{request_id}/attachments",
    AttachmentRef,
    list[AttachmentDoc],
    summary="The scans kept with a request",
    tag=TAG,
)
def list_attachments(svc: Service, actor: Actor | None, data: AttachmentRef) -> Any:
    return svc.attachments.list_for(data.request_id, actor=acting(actor))
