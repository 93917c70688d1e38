"""Renewing a certificate: same unit, same kind, new validity, linked to the old one."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from sqlmodel import select

from pki.ca import certs
from pki.enums import CertificateStatus, RevocationReason
from pki.errors import FieldError, IssuanceError, ValidationError
from pki.models import Certificate, CertificateRequest
from pki.services.authz import require_operation
from pki.services.certificates import CertificateService
from pki.services.context import Actor, Context
from pki.services.issuance import IssuanceService, csr_public_key
from pki.services.revocation import RevocationService


class RenewalService:
    def __init__(self, ctx: Context, issuance: IssuanceService, revocation: RevocationService) -> None:
        self._ctx = ctx
        self._issuance = issuance
        self._revocation = revocation

    def renew(
        self, serial: str, *, actor: Actor, months: int | None = None, csr: bytes | None = None
    ) -> Certificate:
        """Issue the successor of a certificate inside its renewal window (ca.toml [renewal]: from
        ``window_days`` before it ends to ``after_expiry_days`` after).

        Without ``csr`` the old public key is certified again; with it (rekey) the new key is. Renewed before
        it ends, the months count from the old not-after when ``carry_over`` is on (the unit keeps what it
        paid for); after it ended, from now. Policy also says whether the old certificate is revoked as
        superseded.
        """
        if months is not None and months not in self._ctx.policies.form.validity_months:
            allowed = ", ".join(map(str, self._ctx.policies.form.validity_months))
            raise ValidationError([FieldError("months", f"must be one of {allowed}", "有效期无效")])
        new_key = self._issuance.checked_key(csr_public_key(csr)) if csr is not None else None
        with self._ctx.denials_recorded(actor, "renew", "certificate", serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "renew")
            old = CertificateService.get_in(s, serial, lock=True, actor=actor)
            self._check_renewable(old)
            req = s.exec(
                select(CertificateRequest).where(CertificateRequest.id == old.request_id).with_for_update()
            ).one()
            key = new_key or self._issuance.checked_key(
                certs.public_key_of(x509.load_der_x509_certificate(old.der))
            )
            successor = s.exec(
                select(Certificate.serial).where(Certificate.renewed_from_id == old.id)
            ).first()
            if successor is not None:
                raise IssuanceError(
                    f"certificate {old.serial} was already renewed as {successor}",
                    message_zh="该证书已更新过",
                )
            carry = self._ctx.policies.ca.renewal_carry_over and old.not_valid_after > self._ctx.now()
            issued = self._issuance.issue_locked(
                s,
                req,
                key,
                actor=actor,
                months=months,
                months_from=old.not_valid_after if carry else None,
                renewed_from=old,
            )
            if self._ctx.policies.ca.revoke_superseded == "issue" and old.not_valid_after > self._ctx.now():
                self._revocation.revoke_locked(
                    s,
                    [old],
                    RevocationReason.SUPERSEDED,
                    actor=actor,
                    comment=f"superseded by {issued.serial}",
                )
            return issued

    def _check_renewable(self, old: Certificate) -> None:
        now = self._ctx.now()
        if old.status is CertificateStatus.REVOKED:
            raise IssuanceError(
                f"certificate {old.serial} is revoked: a revoked certificate is not renewed",
                message_zh="证书已吊销，不能更新",
            )
        after = self._ctx.policies.ca.renewal_after_expiry_days
        if old.not_valid_after + timedelta(days=after) <= now:
            raise IssuanceError(
                f"certificate {old.serial} expired on {old.not_valid_after.date().isoformat()}, more than "
                f"{after} days ago (ca.toml [renewal] after_expiry_days): apply anew",
                message_zh="证书过期已超过可更新期限，请重新申请",
            )
        if old.request_id is None:
            raise IssuanceError(f"certificate {old.serial} has no request to renew from")
        opens = old.not_valid_after - timedelta(days=self._ctx.policies.ca.renewal_window_days)
        if now < opens:
            raise IssuanceError(
                f"certificate {old.serial} can be renewed from {opens.date().isoformat()} "
                f"({self._ctx.policies.ca.renewal_window_days} days before it ends)",
                message_zh=f"证书更新期自 {opens.date().isoformat()} 开始",
            )
