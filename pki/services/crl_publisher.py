"""Publishing CRLs: one per issuing CA, numbers strictly increasing, expired certificates left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import DateTime, String, delete, type_coerce
from sqlmodel import Session, col, func, select

from pki import audit
from pki.ca import crl
from pki.ca.validity import whole_seconds
from pki.enums import CaRole, CertificateStatus
from pki.errors import NotFoundError
from pki.models import Certificate, CrlRecord
from pki.services.authority import AuthorityService, LoadedCa
from pki.services.authz import require_operation
from pki.services.context import Actor, Context

KEEP_PER_CA = 10
_CERT = Certificate.__table__  # type: ignore[attr-defined]  # older CRLs are pruned; the audit trail keeps every publication


@dataclass(frozen=True)
class Published:
    ca: str
    record: CrlRecord


class CrlService:
    def __init__(self, ctx: Context, authority: AuthorityService) -> None:
        self._ctx = ctx
        self._authority = authority

    def publish(self, *, actor: Actor | None = None) -> list[Published]:
        """A fresh CRL for every issuing CA, in one transaction.

        ``actor`` None is the scheduled run (cron, timer): whoever can unlock the CA key may publish. A named
        actor needs the crl_publish role.
        """
        by = actor.username if actor else "system"
        if actor is not None:
            with self._ctx.denials_recorded(actor, "crl_publish", "ca"), self._ctx.read() as s:
                require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "crl_publish")
        # The scheduled publication also keeps the delegated OCSP signers fresh.
        self._authority.rotate_ocsp_signers(actor=by)
        issuing = [c for c in self._authority.loaded().values() if c.record.role is CaRole.ISSUING]
        out: list[Published] = []
        with self._ctx.write(checkpoint="crl") as s:  # the audit head is checkpointed with every CRL
            for ca in issuing:
                now = whole_seconds(self._ctx.now())
                # Core select, no ORM objects or per-row type conversion: revoked_at comes back as stored
                # (UTC; naive on SQLite), the reason as its text value.
                rows = s.execute(
                    select(
                        _CERT.c.serial,
                        type_coerce(_CERT.c.revoked_at, DateTime(timezone=True)),
                        type_coerce(_CERT.c.revocation_reason, String()),
                    ).where(
                        _CERT.c.ca_id == ca.id,
                        _CERT.c.status == CertificateStatus.REVOKED.value,
                        _CERT.c.not_valid_after > now,
                        _CERT.c.revoked_at.is_not(None),
                        _CERT.c.revocation_reason.is_not(None),
                    )
                ).all()
                last = s.exec(select(func.max(CrlRecord.number)).where(CrlRecord.ca_id == ca.id)).one()
                number = (last or 0) + 1
                next_update = now + timedelta(hours=self._ctx.policies.ca.crl_next_update_hours)
                data = crl.build_crl(
                    ca.certificate,
                    self._authority.key_for(ca),
                    number=number,
                    this_update=now,
                    next_update=next_update,
                    entries=[(serial, at, reason) for serial, at, reason in rows],
                )
                record = CrlRecord(
                    ca_id=ca.id,
                    number=number,
                    this_update=now,
                    next_update=next_update,
                    entries=len(rows),
                    der=data,
                    published_by=by,
                )
                s.add(record)
                s.flush()
                self._prune(s, ca, number)
                audit.append(
                    s,
                    at=self._ctx.now(),
                    actor=by,
                    action="crl.publish",
                    subject_type="ca",
                    subject_id=ca.slug,
                    details={"number": number, "entries": len(rows)},
                )
                out.append(Published(ca.slug, record))
        return out

    @staticmethod
    def _prune(s: Session, ca: LoadedCa, newest: int) -> None:
        s.execute(
            delete(CrlRecord).where(
                col(CrlRecord.ca_id) == ca.id, col(CrlRecord.number) <= newest - KEEP_PER_CA
            )
        )

    def latest(self, ca_slug: str) -> CrlRecord:
        """The newest published CRL of an issuing CA; NotFoundError before the first publication."""
        ca = self._authority.get(ca_slug)
        with self._ctx.read() as s:
            record = s.exec(
                select(CrlRecord)
                .where(CrlRecord.ca_id == ca.id)
                .order_by(col(CrlRecord.number).desc())
                .limit(1)
            ).first()
        if record is None:
            raise NotFoundError(f"no CRL published yet for {ca_slug!r}")
        return record
