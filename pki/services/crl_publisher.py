"""Publishing CRLs: one per CA, numbers strictly increasing, expired certificates left out.

The root publishes one too (an ARL: it covers the issuing CA certificates, none of which is revoked today),
because a relying party that checks CRLs checks every certificate of the chain: nginx's `ssl_crl` refuses
every client ("unable to get certificate CRL") when the root's is missing.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import DateTime, String, delete, type_coerce
from sqlmodel import Session, col, func, select

from pki import audit
from pki.ca import crl
from pki.ca.validity import whole_seconds
from pki.enums import CaRole, CertificateStatus
from pki.errors import NotFoundError
from pki.files import write_atomic
from pki.models import Certificate, CrlRecord
from pki.services.authority import AuthorityService, LoadedCa
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.revocation import RevocationService

KEEP_PER_CA = 10
_CERT = Certificate.__table__  # type: ignore[attr-defined]  # older CRLs are pruned; the audit trail keeps every publication


@dataclass(frozen=True)
class Published:
    ca: str
    record: CrlRecord


class CrlService:
    def __init__(self, ctx: Context, authority: AuthorityService, revocation: RevocationService) -> None:
        self._ctx = ctx
        self._authority = authority
        self._revocation = revocation

    def publish(self, *, actor: Actor | None = None) -> list[Published]:
        """A fresh CRL for every CA (root and issuing CAs; not the OCSP signers, which issue nothing), in one
        transaction.

        ``actor`` None is the scheduled run (cron, timer): whoever can unlock the CA key may publish. A named
        actor needs the crl_publish role.
        """
        by = actor.username if actor else "system"
        if actor is not None:
            with self._ctx.denials_recorded(actor, "crl_publish", "ca"), self._ctx.read() as s:
                require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "crl_publish")
        # The scheduled publication also keeps the delegated OCSP signers fresh.
        self._authority.rotate_ocsp_signers(actor=by)
        signing = [
            c for c in self._authority.loaded().values() if c.record.role in (CaRole.ROOT, CaRole.ISSUING)
        ]
        out: list[Published] = []
        with self._ctx.write(checkpoint="crl") as s:  # the audit head is checkpointed with every CRL
            self._revocation.expire_holds(s, by=by)  # holds past ca.toml [hold] max_days: revoked first
            for ca in signing:
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
        """The newest published CRL of a CA (root or issuing); NotFoundError before the first publication."""
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


BUNDLE = "crls.pem"  # every CRL in one PEM file: what nginx's ssl_crl and openssl's -CRLfile take


def pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))  # RFC 7468
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n".encode("ascii")


def write_files(directory: Path, published: Sequence[Published]) -> list[Path]:
    """Write CA.crl (DER) and CA.crl.pem for each CRL, then the bundle, each file atomically (pki.files):
    a process killed at any point leaves every file either as it was or whole and new."""
    written: list[Path] = []
    for p in published:
        for name, data in ((f"{p.ca}.crl", p.record.der), (f"{p.ca}.crl.pem", pem(p.record.der))):
            write_atomic(directory / name, data)
            written.append(directory / name)
    write_atomic(directory / BUNDLE, b"".join(pem(p.record.der) for p in published))
    written.append(directory / BUNDLE)
    return written
