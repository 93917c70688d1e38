"""Reading issued certificates: lists, one by serial, exports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlmodel import Session, col, select

from pki.enums import AccessType, CertificateStatus
from pki.errors import FieldError, NotFoundError, ValidationError
from pki.models import Certificate
from pki.services.authority import AuthorityService
from pki.services.context import Context

_HEX = re.compile(r"^[0-9A-F]{1,40}$")
EXPORT_FORMATS = ("pem", "der", "chain")


def normalize_serial(text: str) -> str:
    """Hex with or without colons or spaces, any case, leading zeros or not -> our stored form."""
    cleaned = re.sub(r"[\s:]", "", text).upper().removeprefix("0X").lstrip("0") or "0"
    if not _HEX.match(cleaned):
        raise ValidationError(
            [FieldError("serial", f"{text!r} is not a hexadecimal serial number", "证书序列号应为十六进制")]
        )
    return cleaned


def effective_status(cert: Certificate, now_utc: object) -> str:
    """valid / revoked / expired (revocation wins: a revoked certificate stays revoked after expiry)."""
    if cert.status is CertificateStatus.REVOKED:
        return "revoked"
    return "expired" if cert.not_valid_after <= now_utc else "valid"  # type: ignore[operator]


@dataclass(frozen=True)
class CertificateFilter:
    status: str | None = None  # valid | revoked | expired
    kind: AccessType | None = None
    expiring_within_days: int | None = None
    request_id: int | None = None
    after_id: int | None = None
    limit: int = 100


class CertificateService:
    def __init__(self, ctx: Context, authority: AuthorityService) -> None:
        self._ctx = ctx
        self._authority = authority

    def find(self, flt: CertificateFilter | None = None) -> list[Certificate]:
        """Oldest first; ``expiring_within_days`` lists valid certificates ending within that many days."""
        flt = flt or CertificateFilter()
        now = self._ctx.now()
        stmt = select(Certificate)
        if flt.status == "revoked":
            stmt = stmt.where(Certificate.status == CertificateStatus.REVOKED)
        elif flt.status in ("valid", "expired") or flt.expiring_within_days is not None:
            stmt = stmt.where(Certificate.status == CertificateStatus.VALID)
            if flt.status == "expired":
                stmt = stmt.where(col(Certificate.not_valid_after) <= now)
            else:
                stmt = stmt.where(col(Certificate.not_valid_after) > now)
        elif flt.status is not None:
            raise ValidationError([FieldError("status", "must be valid, revoked or expired", "状态无效")])
        if flt.expiring_within_days is not None:
            horizon = now + timedelta(days=flt.expiring_within_days)
            stmt = stmt.where(col(Certificate.not_valid_after) <= horizon)
        if flt.kind is not None:
            stmt = stmt.where(Certificate.kind == flt.kind)
        if flt.request_id is not None:
            stmt = stmt.where(Certificate.request_id == flt.request_id)
        if flt.after_id is not None:
            stmt = stmt.where(col(Certificate.id) > flt.after_id)
        order = (
            col(Certificate.not_valid_after) if flt.expiring_within_days is not None else col(Certificate.id)
        )
        with self._ctx.read() as s:
            return list(s.exec(stmt.order_by(order).limit(max(1, min(flt.limit, 10_000)))).all())

    def get(self, serial: str) -> Certificate:
        with self._ctx.read() as s:
            return self.get_in(s, serial)

    @staticmethod
    def get_in(s: Session, serial: str, *, lock: bool = False) -> Certificate:
        normalized = normalize_serial(serial)
        stmt = select(Certificate).where(Certificate.serial == normalized)
        found = s.exec(stmt.with_for_update() if lock else stmt).one_or_none()
        if found is None:
            raise NotFoundError(f"no certificate with serial {normalized}", message_zh="证书不存在")
        return found

    def status_of(self, cert: Certificate) -> str:
        return effective_status(cert, self._ctx.now())

    def export(self, serial: str, fmt: str) -> bytes:
        """pem, der, or chain (the certificate, its issuing CA and the root, PEM)."""
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(
                [FieldError("format", f"must be one of {', '.join(EXPORT_FORMATS)}", "格式无效")]
            )
        cert = self.get(serial)
        parsed = x509.load_der_x509_certificate(cert.der)
        if fmt == "der":
            return cert.der
        if fmt == "pem":
            return parsed.public_bytes(Encoding.PEM)
        issuing = next(c for c in self._authority.loaded().values() if c.id == cert.ca_id)
        return b"".join(c.public_bytes(Encoding.PEM) for c in [parsed, *self._authority.chain(issuing)])
