"""The test → formal rules (cutover.toml) applied to one request, from what is on record at an instant.

Used by the review (approving a formal request is refused while a rule fails) and shown to the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from pki.clock import CHINA_TZ
from pki.enums import AccessType, EvidenceType, RevocationReason
from pki.errors import PrerequisiteMissingError
from pki.models import Certificate, CertificateRequest, Evidence
from policies import Policies
from policies.cutover import RuleResult, formal_prerequisites


@dataclass(frozen=True)
class PrerequisiteReport:
    """Each rule with passed/failed and why; ``applies`` is false for test requests (no rules)."""

    request_id: int
    credential_number: str
    province: str
    access_type: AccessType
    at: datetime
    applies: bool
    rules: tuple[RuleResult, ...]
    test_certificate_since: datetime | None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)


def test_certificate_since(s: Session, credential_number: str, at: datetime) -> datetime | None:
    """Since when the unit has held a test certificate at ``at``: the earliest start among its test
    certificates not revoked for cause (a renewal supersedes, it does not break the holding), provided one
    is valid at ``at``; None when it holds none then."""
    cert = Certificate
    base = (
        col(cert.credential_number) == credential_number,
        col(cert.kind) == AccessType.TEST,
        col(cert.not_valid_before) <= at,
    )
    holds = s.exec(
        select(func.count())
        .select_from(cert)
        .where(
            *base,
            col(cert.not_valid_after) > at,
            or_(col(cert.revoked_at).is_(None), col(cert.revoked_at) > at),
        )
    ).one()
    if not holds:
        return None
    since = s.exec(
        select(func.min(cert.not_valid_before)).where(
            *base,
            or_(
                col(cert.revoked_at).is_(None),
                col(cert.revoked_at) > at,
                col(cert.revocation_reason) == RevocationReason.SUPERSEDED,
            ),
        )
    ).one()
    if since is not None and since.tzinfo is None:  # an aggregate loses the column type on SQLite
        since = datetime.fromisoformat(str(since)).replace(tzinfo=at.tzinfo)
    return since


def evidence_on_record(s: Session, credential_number: str, at: datetime) -> set[EvidenceType]:
    """The evidence types recorded for the unit by ``at`` and dated no later than that day (CST)."""
    rows = s.exec(
        select(Evidence.evidence_type)
        .where(
            Evidence.credential_number == credential_number,
            col(Evidence.recorded_at) <= at,
            col(Evidence.document_date) <= at.astimezone(CHINA_TZ).date(),
        )
        .distinct()
    ).all()
    return {EvidenceType(r) for r in rows}


def evaluate(s: Session, policies: Policies, req: CertificateRequest, at: datetime) -> PrerequisiteReport:
    assert req.id is not None
    if req.access_type is not AccessType.FORMAL:
        return PrerequisiteReport(
            req.id, req.credential_number, req.province, req.access_type, at, False, (), None
        )
    since = test_certificate_since(s, req.credential_number, at)
    have = evidence_on_record(s, req.credential_number, at)
    rules = formal_prerequisites(
        policies.cutover,
        province=req.province,
        test_certificate_since=since,
        reports_on_record={e.value for e in have if e is not EvidenceType.WAIVER},
        waiver_on_record=EvidenceType.WAIVER in have,
        at=at,
    )
    return PrerequisiteReport(
        req.id, req.credential_number, req.province, req.access_type, at, True, tuple(rules), since
    )


def require_prerequisites(s: Session, policies: Policies, req: CertificateRequest, at: datetime) -> None:
    """Raise PrerequisiteMissingError naming the first failed rule (all failures in the message)."""
    report = evaluate(s, policies, req, at)
    if report.passed:
        return
    first = report.failed[0]
    raise PrerequisiteMissingError(
        first.rule,
        "; ".join(f"{r.rule}: {r.reason}" for r in report.failed),
        "；".join(r.reason_zh or r.reason for r in report.failed),
    )
