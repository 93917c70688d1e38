"""What agreeing to accept a request (受理意见 同意) needs beyond role, duties and state: the scans that
workflow.toml [acceptance] requires for its access type, and, when its credit code is on record under another
unit name, the acceptor's explicit confirmation. Disagreeing needs neither.

The same reads serve the request page (the warning and what is missing, before the acceptor acts) and the
acceptance itself (inside its transaction, where they decide).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlmodel import Session, col, select

from pki.enums import RequestState
from pki.errors import FieldError, ValidationError
from pki.models import Certificate, CertificateRequest, RequestAttachment
from policies import Policies

# Enough to show the acceptor; a code on record under more names than this is suspicious anyway.
CONFLICTS_SHOWN = 10


@dataclass(frozen=True)
class NameConflict:
    """Another record holding the request's credit code under another unit name."""

    kind: str  # "request" or "certificate"
    ref: str  # the request's id or the certificate's serial
    unit_name: str

    @property
    def audit_ref(self) -> str:
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class AcceptanceCheck:
    """What stands between the request and an acceptance: conflicts to confirm, scans still missing."""

    conflicts: tuple[NameConflict, ...]
    missing_attachments: tuple[str, ...]  # attachment kinds (access.toml [attachments])
    confirmation_needed: bool  # conflicts exist and the policy asks the acceptor to confirm them


def same_name(a: str, b: str) -> bool:
    """Unit names equal up to width (full-width letters and digits), case and white space."""
    return _folded(a) == _folded(b)


def _folded(name: str) -> str:
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def name_conflicts(s: Session, req: CertificateRequest) -> tuple[NameConflict, ...]:
    """Other requests (not cancelled) and certificates with ``req``'s credential number and another unit name,
    newest first. A certificate is listed only when its request is not (one record per application)."""
    number = req.credential_number
    requests = s.exec(
        select(CertificateRequest.id, CertificateRequest.unit_name)
        .where(
            CertificateRequest.credential_number == number,
            CertificateRequest.id != req.id,
            CertificateRequest.state != RequestState.CANCELLED,
        )
        .order_by(col(CertificateRequest.id).desc())
        .limit(CONFLICTS_SHOWN * 5)
    ).all()
    out = [
        NameConflict("request", str(rid), name)
        for rid, name in requests
        if not same_name(name, req.unit_name)
    ]
    listed = {int(c.ref) for c in out}
    certificates = s.exec(
        select(Certificate.serial, Certificate.unit_name, Certificate.request_id)
        .where(Certificate.credential_number == number)
        .order_by(col(Certificate.id).desc())
        .limit(CONFLICTS_SHOWN * 5)
    ).all()
    out += [
        NameConflict("certificate", serial, name)
        for serial, name, request_id in certificates
        if request_id != req.id and request_id not in listed and not same_name(name, req.unit_name)
    ]
    return tuple(out[:CONFLICTS_SHOWN])


def missing_attachments(s: Session, policies: Policies, req: CertificateRequest) -> tuple[str, ...]:
    """The attachment kinds the policy requires for ``req``'s access type that are not on record."""
    required = policies.workflow.acceptance.attachments_for(req.access_type)
    if not required:
        return ()
    present = set(
        s.exec(
            select(RequestAttachment.kind).where(
                RequestAttachment.request_id == req.id, col(RequestAttachment.kind).in_(required)
            )
        ).all()
    )
    return tuple(kind for kind in required if kind not in present)


def check(s: Session, policies: Policies, req: CertificateRequest) -> AcceptanceCheck:
    conflicts = name_conflicts(s, req)
    return AcceptanceCheck(
        conflicts=conflicts,
        missing_attachments=missing_attachments(s, policies, req),
        confirmation_needed=bool(conflicts) and policies.workflow.acceptance.confirm_uscc_name_conflict,
    )


def require_ready(
    s: Session, policies: Policies, req: CertificateRequest, *, confirm_uscc: bool
) -> tuple[NameConflict, ...]:
    """Raise ValidationError naming what is missing for an agreement (``attachments``, ``confirm_uscc``);
    return the conflicts the acceptor confirmed, for the audit record."""
    found = check(s, policies, req)
    errors: list[FieldError] = []
    if found.missing_attachments:
        labels = policies.access.attachment_kinds
        names = ", ".join(found.missing_attachments)
        errors.append(
            FieldError(
                "attachments",
                f"upload the {names} scan before accepting a {req.access_type.value} request",
                "受理前须上传：" + "、".join(labels.get(k, k) for k in found.missing_attachments),
            )
        )
    if found.confirmation_needed and not confirm_uscc:
        others = "; ".join(f"{c.kind} {c.ref}: {c.unit_name}" for c in found.conflicts)
        errors.append(
            FieldError(
                "confirm_uscc",
                f"credit code {req.credential_number} is on record under another unit name ({others}); "
                "check it and confirm to accept",
                f"统一社会信用代码 {req.credential_number} 已登记在其他单位名下，请核实后勾选确认再受理",
            )
        )
    if errors:
        raise ValidationError(errors)
    return found.conflicts
