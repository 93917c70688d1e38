"""The registry of connected parties (from 附件4–6 unit lists) and the evidence on record for them.

Parties and evidence are keyed by USCC (统一社会信用代码), the same number requests and certificates carry
(``credential_number``), so the three link without foreign keys that a re-import would have to respect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, insert
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from pki import audit
from pki import validators as v
from pki.application import single_line
from pki.enums import AccessMode, EvidenceType, PartyKind, PartyState
from pki.errors import (
    ConflictError,
    FieldError,
    ImportRowsError,
    NotFoundError,
    RowError,
    ValidationError,
)
from pki.ids import id_bound, known_id
from pki.models import CutoverDecision, CutoverRun, Evidence, Party
from pki.services.authz import require_operation
from pki.services.bulk import unit_rows
from pki.services.context import Actor, Context
from pki.services.points import point_for_new_work
from pki.services.scope import scope_for
from policies.form import Province, ProvinceTable

_CHUNK = 500
_PARTY = Party.__table__  # type: ignore[attr-defined]
_DECISION = CutoverDecision.__table__  # type: ignore[attr-defined]
_RUN = CutoverRun.__table__  # type: ignore[attr-defined]


@dataclass
class PartyImportResult:
    total: int
    imported: int = 0
    already_registered: list[str] = field(default_factory=list)  # USCCs skipped
    rejected: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class PartyRecord:
    """A registered party with its state: registered until a cutover run decided allowed or refused."""

    id: int
    platform: str
    credential_number: str
    name: str
    province: str
    party_kind: PartyKind
    access_mode: AccessMode
    state: PartyState
    reason: str  # the cutover decision's reason, "" while registered
    industry: str
    location: str
    imported_by: str
    imported_at: datetime


@dataclass(frozen=True)
class EvidenceRecord:
    """An evidence row without its document bytes (what lists and the UI show)."""

    id: int
    credential_number: str
    evidence_type: EvidenceType
    reference: str
    document_date: date
    filename: str
    size: int
    sha256: str
    recorded_by: str
    recorded_at: datetime


def _row_error(line: int, name: str, message: str, message_zh: str) -> RowError:
    return RowError(line, (FieldError(name, message, message_zh),))


class PartyService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- the registry ------------------------------------------------------------------------------------

    def import_list(
        self,
        data: bytes,
        *,
        actor: Actor,
        platform: str = "production",
        party_kind: PartyKind = PartyKind.UNIT,
        access_mode: AccessMode = AccessMode.BATCH,
        province: str | None = None,
        source_name: str = "",
        skip_invalid: bool = False,
        point: str | None = None,
    ) -> PartyImportResult:
        """Register every unit of a 附件4–6 list as a party of ``platform``, in one transaction, for the
        actor's point (``point``: as for RequestService.create).

        The province is ``province`` when given, else the list's 省份 column, else the USCC's division code
        (positions 3–4). Units already registered for the platform are left as they are and reported.
        Raises ImportRowsError when a row is bad (unless ``skip_invalid``), ConfigurationError for an unknown
        platform, ValidationError for an unknown ``province``.
        """
        self._ctx.policies.cutover.platform(platform)  # ConfigurationError if unknown
        provinces = self._ctx.policies.provinces
        fixed = None
        if province:
            fixed = provinces.lookup(province)
            if fixed is None:
                raise ValidationError(
                    [FieldError("province", f"unknown province {province!r}", "省份名称无效")]
                )
        good: list[dict[str, object]] = []
        bad: list[RowError] = []
        seen: dict[str, int] = {}
        total = 0
        for line, cells in unit_rows(data):
            total += 1
            if isinstance(cells, RowError):
                bad.append(cells)
                continue
            checked = _party_row(line, cells, fixed, provinces)
            if isinstance(checked, RowError):
                bad.append(checked)
                continue
            uscc = str(checked["credential_number"])
            first = seen.setdefault(uscc, line)
            if first != line:
                bad.append(
                    _row_error(line, "credential_number", f"same unit as line {first}", f"与第{first}行重复")
                )
                continue
            good.append(checked)
        if bad and not skip_invalid:
            raise ImportRowsError(sorted(bad, key=lambda r: r.row), total=total)
        result = PartyImportResult(total=total, rejected=sorted(bad, key=lambda r: r.row))
        with self._ctx.denials_recorded(actor, "party.import", "party"), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "party_import")
            point_id = point_for_new_work(s, scope_for(s, actor), point)
            existing: set[str] = set()
            numbers = [str(g["credential_number"]) for g in good]
            for i in range(0, len(numbers), _CHUNK):
                existing.update(
                    s.exec(
                        select(Party.credential_number).where(
                            Party.platform == platform,
                            col(Party.credential_number).in_(numbers[i : i + _CHUNK]),
                        )
                    ).all()
                )
            now = self._ctx.now()
            common = {
                "platform": platform,
                "party_kind": party_kind,
                "access_mode": access_mode,
                "source_name": source_name[:255],
                "imported_by": actor.username,
                "imported_at": now,
                "point_id": point_id,
            }
            rows = [{**g, **common} for g in good if g["credential_number"] not in existing]
            result.already_registered = sorted(existing)
            result.imported = len(rows)
            if rows:
                s.execute(insert(Party), rows)
            audit.append(
                s,
                at=now,
                actor=actor.username,
                action="party.import",
                subject_type="party",
                subject_id=platform,
                details={
                    "platform": platform,
                    "kind": party_kind.value,
                    "access_mode": access_mode.value,
                    "source": source_name,
                    "imported": len(rows),
                    "already_registered": len(existing),
                    "rejected": len(bad),
                },
            )
        return result

    def list_parties(
        self,
        *,
        platform: str | None = None,
        province: str | None = None,
        after_id: int | None = None,
        limit: int = 1000,
        actor: Actor | None = None,
    ) -> list[PartyRecord]:
        """One page of the parties of ``actor``'s scope in id order (keyset: pass the last id seen as
        ``after_id``), each with its state from its cutover decision (a platform has one run, so a party at
        most one decision)."""
        p, d, r = _PARTY, _DECISION, _RUN
        joined = p.outerjoin(r, r.c.platform == p.c.platform).outerjoin(
            d,
            and_(d.c.run_id == r.c.id, d.c.party_id == p.c.id),  # the unique (run_id, party_id) index
        )
        stmt = sa_select(p, d.c.allowed, d.c.reason).select_from(joined)
        if platform:
            stmt = stmt.where(p.c.platform == platform)
        if province:
            known = self._ctx.policies.provinces.lookup(province)
            stmt = stmt.where(p.c.province == (known.name if known else province.strip()))
        after_id = id_bound(after_id, "after_id")
        if after_id is not None:
            stmt = stmt.where(p.c.id > after_id)
        stmt = stmt.order_by(p.c.id).limit(max(1, min(limit, 10_000)))
        with self._ctx.read() as s:
            rows = s.execute(stmt.where(scope_for(s, actor).where(p.c.point_id))).all()
        return [
            PartyRecord(
                id=r.id,
                platform=r.platform,
                credential_number=r.credential_number,
                name=r.name,
                province=r.province,
                party_kind=PartyKind(r.party_kind),
                access_mode=AccessMode(r.access_mode),
                state=PartyState.REGISTERED
                if r.allowed is None
                else (PartyState.ALLOWED if r.allowed else PartyState.REFUSED),
                reason=r.reason or "",
                industry=r.industry,
                location=r.location,
                imported_by=r.imported_by,
                imported_at=r.imported_at,
            )
            for r in rows
        ]

    def iter_parties(
        self,
        *,
        platform: str | None = None,
        province: str | None = None,
        page: int = 1000,
        actor: Actor | None = None,
    ) -> Iterator[PartyRecord]:
        """Every matching party of ``actor``'s scope, a page at a time (memory does not grow with the
        registry)."""
        after: int | None = None
        while True:
            rows = self.list_parties(
                platform=platform, province=province, after_id=after, limit=page, actor=actor
            )
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].id

    def get(
        self, credential_number: str, *, platform: str = "production", actor: Actor | None = None
    ) -> PartyRecord:
        """The party of ``platform`` with this USCC, if in ``actor``'s scope (NotFoundError otherwise)."""
        with self._ctx.read() as s:
            party_id = s.exec(
                select(Party.id).where(
                    Party.platform == platform, Party.credential_number == credential_number.strip().upper()
                )
            ).one_or_none()
        found = (
            [p for p in self.list_parties(after_id=party_id - 1, limit=1, actor=actor) if p.id == party_id]
            if party_id is not None
            else []
        )
        if not found:
            raise NotFoundError(
                f"no party {credential_number} on platform {platform}", message_zh="未找到该接入单位"
            )
        return found[0]

    # -- evidence ----------------------------------------------------------------------------------------

    def add_evidence(
        self,
        *,
        credential_number: str,
        evidence_type: EvidenceType | str,
        reference: str,
        document_date: date | str,
        filename: str,
        content: bytes,
        actor: Actor,
    ) -> EvidenceRecord:
        """Record a report or waiver letter with its document (kept in the database with its SHA-256).

        Raises ValidationError naming the bad field (English ``message``, Chinese ``message_zh``),
        ConflictError when the same document is already on record for the unit.
        """
        errors: list[FieldError] = []
        uscc = ""
        try:
            uscc = v.normalize_uscc(credential_number)
        except v.Invalid as e:
            errors.append(FieldError("credential_number", e.message, f"统一社会信用代码：{e.message_zh}"))
        kind: EvidenceType | None = None
        try:
            kind = EvidenceType(evidence_type)
        except ValueError:
            known = ", ".join(t.value for t in EvidenceType)
            errors.append(FieldError("type", f"must be one of {known}", "材料类型无效"))
        reference = reference.strip()
        if not reference or len(reference) > 128 or not single_line(reference):
            errors.append(
                FieldError("reference", "a single-line reference of at most 128 characters", "文号：必填")
            )
        when: date | None = None
        try:
            when = (
                document_date
                if isinstance(document_date, date)
                else date.fromisoformat(document_date.strip())
            )
        except ValueError:
            errors.append(
                FieldError("date", "must be a date YYYY-MM-DD", "日期格式应为年-月-日，例如 2020-10-19")
            )
        if when is not None and when > self._ctx.today():
            errors.append(FieldError("date", "may not be in the future", "日期不能晚于今天"))
        name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
        if not name or len(name) > 255 or not single_line(name):
            errors.append(FieldError("file", "a file name is required", "文件：必填"))
        if not content:
            errors.append(FieldError("file", "the document is empty", "文件为空"))
        elif len(content) > (limit := self._ctx.policies.access.attachment_max_bytes):
            errors.append(
                FieldError("file", f"larger than {limit} bytes", f"文件过大（上限 {limit // 1_048_576} MiB）")
            )
        if errors:
            raise ValidationError(errors)
        assert kind is not None and when is not None
        digest = hashlib.sha256(content).hexdigest()
        with self._ctx.denials_recorded(actor, "evidence.add", "evidence"), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "evidence_record")
            clash = s.exec(
                select(Evidence.id).where(
                    Evidence.credential_number == uscc,
                    Evidence.evidence_type == kind,
                    Evidence.sha256 == digest,
                )
            ).first()
            if clash is not None:
                raise ConflictError(
                    f"this document is already on record for {uscc} (evidence {clash})",
                    message_zh=f"该材料已备案（编号 {clash}）",
                )
            row = Evidence(
                credential_number=uscc,
                evidence_type=kind,
                reference=reference,
                document_date=when,
                filename=name,
                size=len(content),
                sha256=digest,
                content=content,
                recorded_by=actor.username,
                recorded_at=self._ctx.now(),
            )
            s.add(row)
            s.flush()
            assert row.id is not None
            audit.append(
                s,
                at=row.recorded_at,
                actor=actor.username,
                action="evidence.add",
                subject_type="evidence",
                subject_id=row.id,
                details={
                    "credential_number": uscc,
                    "type": kind.value,
                    "reference": reference,
                    "date": when.isoformat(),
                    "file": name,
                    "sha256": digest,
                },
            )
            return _record(row)

    def list_evidence(
        self, *, credential_number: str | None = None, evidence_type: EvidenceType | None = None
    ) -> list[EvidenceRecord]:
        """Evidence on record, newest first, without the document bytes."""
        columns = [c for c in Evidence.__table__.columns if c.name != "content"]  # type: ignore[attr-defined]
        stmt = select(*columns)
        if credential_number:
            stmt = stmt.where(col(Evidence.credential_number) == credential_number.strip().upper())
        if evidence_type is not None:
            stmt = stmt.where(col(Evidence.evidence_type) == evidence_type)
        stmt = stmt.order_by(col(Evidence.id).desc())
        with self._ctx.read() as s:
            return [EvidenceRecord(**row._mapping) for row in s.execute(stmt)]

    def may_record_evidence(self, actor: Actor) -> bool:
        return self._ctx.policies.workflow.operation_allows(actor.roles, "evidence_record")

    def may_read_evidence(self, actor: Actor) -> bool:
        return self._ctx.policies.workflow.operation_allows(actor.roles, "read_evidence")

    def read_evidence(self, evidence_id: int, *, actor: Actor) -> tuple[EvidenceRecord, bytes]:
        """A recorded document for a person (role ``read_evidence``); the read is audited and the
        SHA-256 checked on the way out."""
        known_id(evidence_id, "evidence")
        with (
            self._ctx.denials_recorded(actor, "evidence.read", "evidence", evidence_id),
            self._ctx.write() as s,
        ):
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "read_evidence")
            row = s.get(Evidence, evidence_id)
            if row is None:
                raise NotFoundError(f"evidence {evidence_id} not found", message_zh="材料不存在")
            if hashlib.sha256(row.content).hexdigest() != row.sha256:
                raise ConflictError(
                    f"evidence {evidence_id}: document does not match its SHA-256", message_zh="材料校验失败"
                )
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="evidence.read",
                subject_type="evidence",
                subject_id=evidence_id,
                details={"credential_number": row.credential_number, "file": row.filename},
            )
            return _record(row), row.content


def _party_row(
    line: int, cells: dict[str, str], fixed: Province | None, provinces: ProvinceTable
) -> dict[str, object] | RowError:
    """One unit-list row as party columns, or the row's error. The province: ``fixed``, else the 省份
    column, else the USCC's division code."""
    name = cells.get("unit_name", "").strip()
    if not name or len(name) > 128 or not single_line(name):
        return _row_error(line, "unit_name", "a single-line unit name is required", "单位名称：必填")
    try:
        uscc = v.normalize_uscc(cells.get("credential_number", ""))
    except v.Invalid as e:
        return _row_error(line, "credential_number", e.message, f"统一社会信用代码：{e.message_zh}")
    where = fixed
    if where is None and cells.get("province"):
        where = provinces.lookup(cells["province"])
        if where is None:
            return _row_error(line, "province", f"unknown province {cells['province']!r}", "省份名称无效")
    if where is None:
        where = provinces.by_code.get(uscc[2:4])
        if where is None:
            return _row_error(
                line,
                "province",
                f"no province for division code {uscc[2:4]}; give --province",
                "无法从统一社会信用代码确定省份",
            )
    return {
        "credential_number": uscc,
        "name": name,
        "province": where.name,
        "industry": cells.get("industry", "")[:64],
        "location": cells.get("location", "")[:128],
        "ownership_type": cells.get("ownership_type", "")[:32],
    }


def _record(row: Evidence) -> EvidenceRecord:
    assert row.id is not None
    return EvidenceRecord(
        id=row.id,
        credential_number=row.credential_number,
        evidence_type=row.evidence_type,
        reference=row.reference,
        document_date=row.document_date,
        filename=row.filename,
        size=row.size,
        sha256=row.sha256,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
    )
