"""Reading issued certificates: lists, one by serial, exports."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from pki.enums import AccessType, CertificateStatus, RevocationReason
from pki.errors import FieldError, NotFoundError, ValidationError
from pki.ids import id_bound
from pki.models import Certificate, TokenCertificate, UsbToken
from pki.services.authority import AuthorityService
from pki.services.context import Actor, Context
from pki.services.scope import by_request, require_certificates_in_scope, scope_for

_HEX = re.compile(r"^[0-9A-F]{1,40}$")
EXPORT_FORMATS = ("pem", "der", "chain")


def normalize_serial(text: str) -> str:
    """Hex with or without colons or spaces, any case, leading zeros or not -> our stored form.

    Raises ValidationError for anything else, the empty string included (it is not serial 0)."""
    if not text.strip(" :\t\r\n"):
        raise ValidationError([FieldError("serial", "a serial number is required", "证书序列号不能为空")])
    cleaned = re.sub(r"[\s:]", "", text).upper().removeprefix("0X").lstrip("0") or "0"
    if not _HEX.match(cleaned):
        raise ValidationError(
            [FieldError("serial", f"{text!r} is not a hexadecimal serial number", "证书序列号应为十六进制")]
        )
    return cleaned


def missing_certificate(serial: str) -> NotFoundError:
    return NotFoundError(f"no certificate with serial {serial}", message_zh="证书不存在")


def effective_status(cert: Certificate, now_utc: object) -> str:
    """valid / held / revoked / expired (revocation wins: a revoked certificate stays revoked after expiry;
    a held one is held until released, revoked or past its validity)."""
    if cert.status is CertificateStatus.REVOKED:
        if cert.revocation_reason is RevocationReason.CERTIFICATE_HOLD and cert.not_valid_after > now_utc:  # type: ignore[operator]
            return "held"
        return "revoked"
    return "expired" if cert.not_valid_after <= now_utc else "valid"  # type: ignore[operator]


@dataclass(frozen=True)
class TokenPlacement:
    """The USBKEY holding (or to hold) a certificate: recorded when issued onto the token; ``delivered`` is
    false until the certificate was written and read back (未写入)."""

    certificate_id: int
    token_serial: str
    token_label: str  # the token's own label
    label: str  # CKA_LABEL of the key pair and certificate objects
    key_id: str
    model: str
    key_type: str
    delivered: bool


_PLACEMENT_CHUNK = 500


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

    def find(self, flt: CertificateFilter | None = None, *, actor: Actor | None = None) -> list[Certificate]:
        """The certificates of ``actor``'s scope (services/scope.py), oldest first; ``expiring_within_days``
        lists valid certificates ending within that many days."""
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
        if id_bound(flt.request_id, "request") is not None:
            stmt = stmt.where(Certificate.request_id == flt.request_id)
        if id_bound(flt.after_id, "after_id") is not None:
            stmt = stmt.where(col(Certificate.id) > flt.after_id)
        order = (
            col(Certificate.not_valid_after) if flt.expiring_within_days is not None else col(Certificate.id)
        )
        with self._ctx.read() as s:
            stmt = stmt.where(by_request(scope_for(s, actor), col(Certificate.request_id)))
            return list(s.exec(stmt.order_by(order).limit(max(1, min(flt.limit, 10_000)))).all())

    def get(self, serial: str, *, actor: Actor | None = None) -> Certificate:
        """One certificate, if its request is in ``actor``'s scope; NotFoundError otherwise."""
        with self._ctx.denials_recorded(actor, "show", "certificate", serial[:64]), self._ctx.read() as s:
            return self.get_in(s, serial, actor=actor)

    @staticmethod
    def get_in(s: Session, serial: str, *, lock: bool = False, actor: Actor | None = None) -> Certificate:
        """:meth:`get` inside the caller's transaction (``lock``: FOR UPDATE)."""
        normalized = normalize_serial(serial)
        stmt = select(Certificate).where(Certificate.serial == normalized)
        found = s.exec(stmt.with_for_update() if lock else stmt).one_or_none()
        if found is None:
            raise missing_certificate(normalized)
        require_certificates_in_scope(s, scope_for(s, actor), [found], missing_certificate)
        return found

    def placements(self, certificate_ids: Iterable[int]) -> dict[int, TokenPlacement]:
        """The token placement of each of ``certificate_ids`` that has one: one query per 500 ids (a page of
        certificates costs one query, not one per row)."""
        ids = sorted(set(certificate_ids))
        out: dict[int, TokenPlacement] = {}
        columns: tuple[Any, ...] = (
            TokenCertificate.certificate_id,
            UsbToken.serial,
            UsbToken.label,
            TokenCertificate.label,
            TokenCertificate.key_id,
            TokenCertificate.model,
            UsbToken.model,
            TokenCertificate.key_type,
            Certificate.delivered,
        )
        stmt = sa_select(*columns).where(
            col(TokenCertificate.token_id) == col(UsbToken.id),
            col(TokenCertificate.certificate_id) == col(Certificate.id),
        )
        with self._ctx.read() as s:
            for i in range(0, len(ids), _PLACEMENT_CHUNK):
                chunk = ids[i : i + _PLACEMENT_CHUNK]
                for (
                    cid,
                    serial,
                    token_label,
                    label,
                    key_id,
                    model,
                    token_model,
                    key_type,
                    delivered,
                ) in s.execute(stmt.where(col(TokenCertificate.certificate_id).in_(chunk))):
                    out[cid] = TokenPlacement(
                        certificate_id=cid,
                        token_serial=serial,
                        token_label=token_label,
                        label=label,
                        key_id=key_id,
                        model=model or token_model,
                        key_type=key_type,
                        delivered=bool(delivered),
                    )
        return out

    def placement(self, certificate_id: int) -> TokenPlacement | None:
        return self.placements([certificate_id]).get(certificate_id)

    def status_of(self, cert: Certificate) -> str:
        return effective_status(cert, self._ctx.now())

    def export(self, serial: str, fmt: str, *, actor: Actor | None = None) -> bytes:
        """pem, der, or chain (the certificate, its issuing CA and the root, PEM)."""
        if fmt not in EXPORT_FORMATS:
            raise ValidationError(
                [FieldError("format", f"must be one of {', '.join(EXPORT_FORMATS)}", "格式无效")]
            )
        cert = self.get(serial, actor=actor)
        parsed = x509.load_der_x509_certificate(cert.der)
        if fmt == "der":
            return cert.der
        if fmt == "pem":
            return parsed.public_bytes(Encoding.PEM)
        issuing = next(c for c in self._authority.loaded().values() if c.id == cert.ca_id)
        return b"".join(c.public_bytes(Encoding.PEM) for c in [parsed, *self._authority.chain(issuing)])
