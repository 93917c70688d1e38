"""Issuing certificates for approved requests: one issuance function for every path (CSR, USB key, renewal).

Each public method is one transaction: the certificate row, the request's move to 'issued' and both audit
records commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlmodel import Session, col, select

from pki import audit
from pki.ca import certs
from pki.ca.keys import PublicKey, algorithm_of, spki_sha256
from pki.ca.validity import add_months, whole_seconds
from pki.enums import Action, CertificateStatus
from pki.errors import FieldError, IssuanceError, ValidationError
from pki.models import Certificate, CertificateRequest
from pki.services.authority import AuthorityService, LoadedCa
from pki.services.context import Actor, Context
from pki.services.requests import SUBJECT as REQUEST
from pki.services.requests import RequestService


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A PEM or DER CSR whose self-signature verifies (proof of possession). Raises ValidationError."""
    try:
        csr = (
            x509.load_pem_x509_csr(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_csr(data)
        )
    except ValueError as e:
        raise ValidationError(
            [FieldError("csr", f"not a PKCS#10 request ({e})", "证书请求文件格式错误")]
        ) from e
    if not csr.is_signature_valid:
        raise ValidationError([FieldError("csr", "its signature does not verify", "证书请求签名无效")])
    return csr


@dataclass(frozen=True)
class Issued:
    certificate: Certificate
    x509: x509.Certificate


class IssuanceService:
    def __init__(self, ctx: Context, requests: RequestService, authority: AuthorityService) -> None:
        self._ctx = ctx
        self._requests = requests
        self._authority = authority

    def issue_from_csr(
        self, request_id: int, csr_data: bytes, *, actor: Actor, expected_version: int | None = None
    ) -> Certificate:
        """Issue for an approved request from a CSR; the subject comes from the approved record, never the CSR."""
        public_key = self.checked_key(parse_csr(csr_data).public_key())
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            self._ctx.write() as s,
        ):
            req = self._requests.lock_for(s, request_id, actor, Action.ISSUE, expected_version)
            return self.issue_locked(s, req, public_key, actor=actor).certificate

    def issue_many_from_csr(self, items: Sequence[tuple[int, bytes]], *, actor: Actor) -> list[Certificate]:
        """Issue for many approved requests in one transaction (all or nothing)."""
        keys = [(rid, self.checked_key(parse_csr(data).public_key())) for rid, data in items]
        with self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST), self._ctx.write() as s:
            out = []
            for rid, key in keys:
                req = self._requests.lock_for(s, rid, actor, Action.ISSUE, None)
                out.append(self.issue_locked(s, req, key, actor=actor).certificate)
            return out

    def issue_locked(
        self,
        s: Session,
        req: CertificateRequest,
        public_key: PublicKey,
        *,
        actor: Actor,
        months: int | None = None,
        renewed_from: Certificate | None = None,
        delivered: bool = True,
    ) -> Issued:
        """The one issuance function. ``req`` is locked by the caller, who owns the transaction.

        A first issuance moves the request to 'issued'; a renewal (``renewed_from``) leaves its state alone.
        Raises IssuanceError when policy refuses (key reuse, validity past the issuing CA).
        """
        assert req.id is not None
        self._refuse_key_reuse(s, req, public_key, renewing=renewed_from is not None)
        ca = self._authority.issuing_for(req.access_type)
        now = whole_seconds(self._ctx.now())
        not_after = add_months(now, months or req.validity_months)
        self._refuse_past_ca(ca, not_after)
        profiles = self._ctx.policies.profiles
        cert = certs.build_end_entity(
            ca.certificate,
            self._authority.key_for(ca),
            public_key,
            certs.end_entity_name(
                unit_name=req.unit_name,
                province=req.province,
                locality=req.county,
                organization_identifier=req.credential_number if profiles.organization_identifier else None,
            ),
            x509.random_serial_number(),
            certs.Validity(now, not_after),
            policy_oid=profiles.kinds[req.access_type.value].policy_oid,
            publication=self._publication(ca),
            organization_code_oid=profiles.organization_code_oid,
            organization_code=req.credential_number,
        )
        row = Certificate(
            serial=f"{cert.serial_number:X}",
            ca_id=ca.id,
            request_id=req.id,
            kind=req.access_type,
            subject=cert.subject.rfc4514_string(),
            unit_name=req.unit_name,
            credential_number=req.credential_number,
            province=req.province,
            not_valid_before=cert.not_valid_before_utc,
            not_valid_after=cert.not_valid_after_utc,
            status=CertificateStatus.VALID,
            key_algorithm=algorithm_of(public_key) or "",
            spki_sha256=spki_sha256(public_key),
            der=cert.public_bytes(Encoding.DER),
            issued_by=actor.username,
            issued_at=now,
            renewed_from_id=renewed_from.id if renewed_from else None,
            delivered=delivered,
        )
        s.add(row)
        s.flush()
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action="certificate.renew" if renewed_from else "certificate.issue",
            subject_type="certificate",
            subject_id=row.serial,
            details={
                "request": req.id,
                "kind": req.access_type.value,
                "ca": ca.slug,
                "not_after": row.not_valid_after.isoformat(),
                "renewed_from": renewed_from.serial if renewed_from else None,
            },
        )
        if renewed_from is None:
            req.issued_by, req.issued_at = actor.username, now
            self._requests.advance(s, req, actor, Action.ISSUE, {"serial": row.serial})
        return Issued(row, cert)

    # -- rules --------------------------------------------------------------------------------------------

    def checked_key(self, public_key: object) -> PublicKey:
        name = algorithm_of(public_key)
        allowed = self._ctx.policies.profiles.allowed_keys
        if name is None or name not in allowed:
            raise ValidationError(
                [
                    FieldError(
                        "csr", f"key type not accepted; allowed: {', '.join(allowed)}", "密钥类型不符合要求"
                    )
                ]
            )
        return public_key  # type: ignore[return-value]

    @staticmethod
    def _refuse_key_reuse(s: Session, req: CertificateRequest, public_key: PublicKey, renewing: bool) -> None:
        """One key, one unit: a certified key may be certified again only when renewing the same request."""
        holders = s.exec(
            select(Certificate.serial, Certificate.request_id).where(
                col(Certificate.spki_sha256) == spki_sha256(public_key)
            )
        ).all()
        others = [serial for serial, request_id in holders if not renewing or request_id != req.id]
        if others:
            raise IssuanceError(
                f"this public key is already certified (certificate {others[0]}): generate a new key",
                message_zh="该公钥已签发过证书，请重新生成密钥",
            )

    @staticmethod
    def _refuse_past_ca(ca: LoadedCa, not_after: datetime) -> None:
        if not_after > ca.record.not_valid_after:
            limit = ca.record.not_valid_after.date().isoformat()
            raise IssuanceError(
                f"the certificate would end {not_after.date().isoformat()}, after its issuing CA {ca.slug!r}"
                f" ({limit}): choose a shorter validity",
                message_zh=f"证书有效期不能超过签发CA的有效期（{limit}）",
            )

    def _publication(self, ca: LoadedCa) -> certs.Publication:
        p = self._ctx.policies.ca
        return certs.Publication(p.crl_url(ca.slug), p.ocsp_url(ca.slug), p.ca_issuers_url(ca.slug))
